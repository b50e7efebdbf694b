"""`talklike telegram` (run the bot by long polling, for local use) and `talklike telegram-setup`
(register the webhook URL, its secret and the command menu with Telegram, for a deployed app)."""

from __future__ import annotations

import asyncio
import os
import threading

from talklike.errors import UserError

POLLING_HELP = """\
Run the Telegram bot on this machine: it long-polls Telegram for updates (no public URL needed) and deletes
any webhook first. The token comes from @BotFather: --token or $TELEGRAM_TOKEN. Settings come from the
environment (TALKLIKE_*, TELEGRAM_*; see docs/settings.md); flags override them. Ctrl-C stops."""
SETUP_HELP = """\
Point Telegram at a deployed app: setWebhook with the URL (ending in /telegram/webhook) and the secret
Telegram will send in X-Telegram-Bot-Api-Secret-Token (--secret or $TELEGRAM_WEBHOOK_SECRET; the app must
have the same), and set the command menu. `talklike telegram` (polling) removes the webhook again."""


def register(subparsers) -> None:
    import argparse

    polling = subparsers.add_parser("telegram", help="run the Telegram bot by polling (local use)",
                                    description=POLLING_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    polling.add_argument("model", nargs="?", help="model file or URL (default: $TALKLIKE_MODEL)")
    _connection(polling)
    polling.add_argument("--store", metavar="URL",
                         help="conversation store (default: $TALKLIKE_STORE_URL or sqlite:///talklike.db)")
    polling.add_argument("--persona", metavar="NAME", help="default persona (default: $TALKLIKE_PERSONA or the first)")
    polling.add_argument("--personas", metavar="A,B", help="only these personas may be imitated")
    polling.add_argument("--drop-pending-updates", action="store_true",
                         help="ignore messages sent while the bot was not running")
    polling.set_defaults(handler=telegram_command)

    setup = subparsers.add_parser("telegram-setup", help="register the Telegram webhook of a deployed app",
                                  description=SETUP_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    setup.add_argument("--url", required=True, help="public https URL of the app's /telegram/webhook")
    _connection(setup)
    setup.add_argument("--secret", help="webhook secret (default: $TELEGRAM_WEBHOOK_SECRET)")
    setup.add_argument("--drop-pending-updates", action="store_true", help="discard updates not yet delivered")
    setup.set_defaults(handler=setup_command)


def _connection(parser) -> None:
    parser.add_argument("--token", help="bot token from @BotFather (default: $TELEGRAM_TOKEN)")
    parser.add_argument("--api-url", metavar="URL", help="Bot API server (default: $TELEGRAM_API_URL or "
                                                         "https://api.telegram.org)")


def _settings(args, extra: dict[str, str | None]):
    """AppConfig from the environment with the flags applied; the token is required."""
    from bot.infra.config import AppConfig

    env = dict(os.environ)
    overrides = {"TELEGRAM_TOKEN": args.token, "TELEGRAM_API_URL": args.api_url, **extra}
    env.update({k: v for k, v in overrides.items() if v is not None})
    config = AppConfig.from_env(env)
    if not config.telegram_token:
        raise UserError("no bot token: pass --token or set TELEGRAM_TOKEN (create a bot with @BotFather)")
    return config, env


def _explain(err: Exception, what: str) -> UserError:
    """A Bot API failure as one line for the terminal."""
    from telegram.error import InvalidToken, NetworkError, TelegramError

    if isinstance(err, InvalidToken):
        return UserError(f"{what}: Telegram rejected the bot token (Unauthorized); check --token / TELEGRAM_TOKEN "
                         "(from @BotFather)")  # PTB's message quotes the token: keep it off the screen
    if isinstance(err, NetworkError):
        return UserError(f"{what}: cannot reach the Bot API ({err}); check the network and TELEGRAM_API_URL")
    if isinstance(err, TelegramError):
        return UserError(f"{what}: the Bot API said: {err}")
    return UserError(f"{what}: {type(err).__name__}: {err}")


def telegram_command(args) -> int:
    """Load the model, check the token (getMe), delete any webhook, poll until Ctrl-C."""
    from telegram.error import TelegramError

    from bot.adapters.telegram.config import TelegramConfig
    from bot.adapters.telegram.handlers import ALLOWED_UPDATES, build_application
    from bot.app import build_engine
    from bot.app.factory import conversations_for
    from bot.infra import user_tags
    from bot.infra.log_format import configure_logging, set_app_level

    config, env = _settings(args, {"TALKLIKE_MODEL": args.model, "TALKLIKE_STORE_URL": args.store,
                                   "TALKLIKE_PERSONA": args.persona, "TALKLIKE_PERSONAS": args.personas})
    configure_logging("INFO")  # JSON lines, as the web app writes them
    set_app_level("DEBUG" if getattr(args, "verbose", False) else config.log_level)
    user_tags.configure(config.log_key)
    telegram_config = TelegramConfig.from_env(env)
    engine = build_engine(config)
    try:
        conversations = conversations_for(config, engine, telegram_config)
        persona = conversations.default_persona
        application = build_application(conversations, config.telegram_token, config.telegram_api_url,
                                        telegram_config, polling=True)
        try:
            webhook = asyncio.run(_check_token(application))
        except TelegramError as err:
            raise _explain(err, "getMe") from None
        if webhook:
            print(f"note: removing the webhook {webhook} while polling; run `talklike telegram-setup` "
                  "to point Telegram at the app again", flush=True)
        print(f"@{application.bot.username} is speaking as {persona} "
              f"(personas: {', '.join(engine.personas)}); Ctrl-C stops", flush=True)
        in_main = threading.current_thread() is threading.main_thread()
        try:
            application.run_polling(allowed_updates=ALLOWED_UPDATES,
                                    drop_pending_updates=args.drop_pending_updates or None,
                                    stop_signals=_DEFAULT_SIGNALS if in_main else None)
        except TelegramError as err:
            raise _explain(err, "polling") from None
    finally:
        engine.close()
    print("stopped", flush=True)
    return 0


async def _check_token(application) -> str:
    """getMe once before polling starts, so a bad token is a one-line error, not a retry loop;
    returns the webhook URL that polling is about to remove ("" if none)."""
    async with application.bot:
        await application.bot.get_me()
        return (await application.bot.get_webhook_info()).url or ""


def setup_command(args) -> int:
    """setWebhook (URL, secret, the updates the bot handles) and setMyCommands."""
    from urllib.parse import urlsplit

    from telegram import BotCommand
    from telegram.error import TelegramError
    from telegram.ext import ExtBot

    from bot.adapters.telegram.handlers import ALLOWED_UPDATES, COMMANDS
    from bot.adapters.telegram.limiter import FloodLimiter

    config, _ = _settings(args, {"TELEGRAM_WEBHOOK_SECRET": args.secret})
    if not config.telegram_webhook_secret:
        raise UserError("no webhook secret: pass --secret or set TELEGRAM_WEBHOOK_SECRET (the app needs the "
                        "same value), e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))'")
    parts = urlsplit(args.url)
    if parts.scheme != "https" or not parts.netloc:
        raise UserError(f"--url must be an https URL (Telegram only calls https webhooks), got {args.url!r}")
    if not parts.path.rstrip("/").endswith("/telegram/webhook"):
        raise UserError(f"--url should end in /telegram/webhook, the app's Telegram endpoint (got {args.url!r})")

    async def setup() -> str:
        async with bot:
            await bot.set_webhook(args.url, secret_token=config.telegram_webhook_secret,
                                  allowed_updates=ALLOWED_UPDATES,
                                  drop_pending_updates=args.drop_pending_updates or None)
            await bot.set_my_commands([BotCommand(name, text) for name, text in COMMANDS])
            return bot.username

    bot = ExtBot(config.telegram_token, base_url=f"{config.telegram_api_url}/bot",
                 base_file_url=f"{config.telegram_api_url}/file/bot", rate_limiter=FloodLimiter())
    try:
        username = asyncio.run(setup())
    except TelegramError as err:
        raise _explain(err, "setWebhook") from None
    print(f"@{username} now receives updates at {args.url} (secret set; commands: "
          f"{', '.join('/' + name for name, _ in COMMANDS)})", flush=True)
    return 0


def _signals():
    import signal

    return (signal.SIGINT, signal.SIGTERM, signal.SIGABRT)


_DEFAULT_SIGNALS = _signals()
