"""The Facebook Messenger adapter: webhook blueprint, event translation, Send API client, setup command.

`blueprint` (the HTTP edge) → `events` (platform JSON → `Event`) → `ordering` (per-user FIFO on the
background pool) → `handler` (engine calls, commands, personas) → `send_api` (Graph API over requests).
"""
