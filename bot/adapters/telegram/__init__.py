"""The Telegram adapter: python-telegram-bot over the reply engine.

`handlers` (what the bot does, and `build_application`), `incoming` (Telegram message → neutral message),
`limiter` (the Bot API's rate limits, flood waits, retries), `config` (TELEGRAM_* settings of the adapter),
`webhook` (the Flask blueprint; the Application on its own event loop thread), `commands`
(`talklike telegram` for polling, `talklike telegram-setup` for the webhook).
"""
