"""The Flask app: `create_app(config=None)` wires the reply engine to the web transports.

Blueprints: health (`/healthz`, `/readyz`), the Messenger webhook (`/messenger/webhook`, when configured),
the Telegram webhook (`/telegram/webhook`, when configured) and the local console (`/` and `/api/`).
Production runs `gunicorn 'bot.app:create_app()'`; each worker process loads the model after the fork.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from flask import Flask, g, jsonify, request
from werkzeug.exceptions import HTTPException

from bot.adapters.telegram.config import TelegramConfig
from bot.conversation import Conversations
from bot.conversation.access import WhoMayTalk
from bot.conversation.commands import MESSENGER, TELEGRAM
from bot.infra import user_tags
from bot.infra.background import BackgroundTasks
from bot.infra.config import AppConfig, ConfigError
from bot.infra.inbox import Inbox
from bot.infra.log_format import configure_logging, set_app_level
from bot.infra.webhook_events import WebhookEvents

log = logging.getLogger("talklike.app")
LOCAL_TRANSCRIPTS = ("console:",)  # the conversations whose transcript something reads back (the console page)


@dataclass
class Services:
    """What the blueprints share: settings, the engine, the conversation layer over it, the background pool
    and the webhook event lifecycle."""

    config: AppConfig
    engine: object  # bot.engine.engine.Engine
    background: BackgroundTasks
    inbox: Inbox  # webhook events acknowledged but not yet answered (recovered if a worker dies)
    events: WebhookEvents
    conversations: Conversations
    closers: list[Callable[[], None]] = field(default_factory=list)  # adapters' own clean-up, run by close

    @classmethod
    def build(cls, config: AppConfig, engine, telegram: TelegramConfig | None = None) -> Services:
        """The services over a loaded engine."""
        background = BackgroundTasks(config.background_threads)
        # An event's lease outlasts any reply (like the conversation lock's), so only a dead holder loses it early.
        inbox = Inbox(engine.store, lease=max(120.0, 4 * config.reply_timeout))
        return cls(config, engine, background, inbox, WebhookEvents(engine.store, inbox, background),
                   conversations_for(config, engine, telegram))

    @property
    def default_persona(self) -> str:
        """TALKLIKE_PERSONA, else the first persona the engine may speak as."""
        return self.conversations.default_persona

    def close(self) -> None:
        """Finish background work, run the adapters' clean-up (newest first: the Telegram loop finishes its
        updates), then stop the engine. Idempotent."""
        self.inbox.close()
        self.background.close()
        while self.closers:
            try:
                self.closers.pop()()
            except Exception:
                log.exception("clean-up at shutdown failed")
        self.engine.close()


def load_config(config: AppConfig | Mapping[str, str] | None) -> AppConfig:
    """An AppConfig from None (the environment), a mapping of variables, or an AppConfig."""
    if isinstance(config, AppConfig):
        config.check()
        return config
    return AppConfig.from_env(config)


def conversations_for(config: AppConfig, engine, telegram: TelegramConfig | None = None) -> Conversations:
    """The conversation layer with the deployment's default persona, disclosure line and allowlists."""
    telegram = telegram or TelegramConfig()
    who = {MESSENGER: WhoMayTalk(users=config.messenger_allow_users),
           TELEGRAM: WhoMayTalk(users=_strings(telegram.allow_users), chats=_strings(telegram.allow_chats),
                                groups=telegram.allow_groups)}
    return Conversations(engine, config.persona, disclosure=config.disclosure, who_may_talk=who)


def _strings(ids) -> frozenset[str] | None:
    return None if ids is None else frozenset(str(i) for i in ids)


def build_engine(config: AppConfig, local: bool = False):
    """Load the model named by TALKLIKE_MODEL into an engine over TALKLIKE_STORE_URL. A model without a
    memorization guard is refused unless TALKLIKE_ALLOW_UNGUARDED=1; the "model loaded" line says which guard
    is in force. A public engine (`local` False) keeps a temperature floor; readable transcripts are kept for
    the console only, unless TALKLIKE_KEEP_TRANSCRIPTS asks for them everywhere."""
    from bot.engine.engine import Engine, EngineConfig
    from bot.infra.model_source import model_path
    from bot.infra.stores.base import DAY_S
    from model.artifact import load_artifact

    if not config.model:
        raise ConfigError("TALKLIKE_MODEL is not set: give the path or URL of a model file written by `talklike export`")
    artifact = load_artifact(str(model_path(config)))
    if artifact.guard is None and not config.allow_unguarded:
        raise ConfigError("the model has no memorization guard, so replies could repeat training messages word "
                          "for word: export it again with `talklike export` (the run's guard.bin), or set "
                          "TALKLIKE_ALLOW_UNGUARDED=1 to serve it anyway")
    allowed = config.personas or artifact.personas
    if config.persona and (config.persona not in artifact.personas or config.persona not in allowed):
        raise ConfigError(f"TALKLIKE_PERSONA {config.persona!r} is not a persona of the model "
                          f"(it has: {', '.join(p for p in artifact.personas if p in allowed)})")
    engine = Engine(artifact, EngineConfig(personas=config.personas, store_url=config.store_url,
                                           retention=config.retention_days * DAY_S, timeout=config.reply_timeout,
                                           num_threads=config.torch_threads,
                                           min_temperature=0.0 if local else config.min_temperature,
                                           transcript_prefixes=None if config.keep_transcripts else LOCAL_TRANSCRIPTS))
    if artifact.guard is None:
        log.warning("model loaded", extra={"guard": "none: replies may repeat training messages (TALKLIKE_ALLOW_UNGUARDED=1)",
                                           "retention_days": config.retention_days})
    else:
        log.info("model loaded", extra={"guard": f"memorization guard: {len(artifact.guard)} windows of "
                                                 f"{artifact.guard.n} characters", "retention_days": config.retention_days})
    return engine


def create_app(config: AppConfig | Mapping[str, str] | None = None, engine=None, *, local: bool = False) -> Flask:
    """The app. `config`: None reads the environment; a mapping is read as if it were the environment.
    `engine`: share an already loaded engine (tests); by default one is loaded from TALKLIKE_MODEL.
    `local`: the app listens on loopback only (`talklike serve`'s default), so its console may stay open;
    anything else (gunicorn, the Procfile, the image) is public and fails closed."""
    settings = load_config(config)
    env = None if isinstance(config, AppConfig) else config  # the variables, for adapters' own settings
    telegram_settings = TelegramConfig.from_env(env)  # checked even with Telegram off: a typo is an error
    if not logging.getLogger().handlers:
        configure_logging(settings.log_level)
    set_app_level(settings.log_level)
    user_tags.configure(settings.log_key)
    app = Flask(__name__, static_folder=None)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.json.ensure_ascii = False
    engine = engine or build_engine(settings, local)
    services = Services.build(settings, engine, telegram_settings)
    app.extensions["talklike"] = services

    from bot.app.health import health

    app.register_blueprint(health)
    if settings.messenger_enabled:
        from bot.adapters.messenger.blueprint import make_blueprint as messenger_blueprint

        app.register_blueprint(messenger_blueprint(services))
    if settings.telegram_webhook_enabled:
        from bot.adapters.telegram.webhook import make_blueprint as telegram_blueprint

        app.register_blueprint(telegram_blueprint(services, telegram_settings))
    access = console_access(settings, local)
    if access is not None:
        from bot.adapters.console.blueprint import install as install_console

        install_console(app, access)
    services.inbox.start()  # after the adapters registered what they recover
    _install_edge(app)
    log.info("app ready", extra={"messenger": settings.messenger_enabled, "telegram_webhook": settings.telegram_webhook_enabled,
                                 "console": _console_mode(access), "personas": len(services.engine.personas),
                                 "store": services.engine.store.url})
    return app


def console_access(settings: AppConfig, local: bool):
    """Who may use the console (bot/adapters/console/access.py), or None when it is off: open on a loopback
    bind, behind TALKLIKE_CONSOLE_TOKEN anywhere else, off where nobody set a token."""
    from bot.adapters.console.access import ConsoleAccess

    if settings.console is False:
        return None
    if settings.console_token:
        if not local and not settings.console_host:
            raise ConfigError("TALKLIKE_CONSOLE_TOKEN is set on a public address: set TALKLIKE_CONSOLE_HOST to the host "
                              "name people open the console at (e.g. mybot.herokuapp.com)")
        return ConsoleAccess(settings.console_token, settings.console_host)
    if local:
        return ConsoleAccess(None, settings.console_host)
    if settings.console:
        raise ConfigError("TALKLIKE_CONSOLE=1 on a public address needs TALKLIKE_CONSOLE_TOKEN (and TALKLIKE_CONSOLE_HOST): "
                          "set one, e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))'")
    return None


def _console_mode(access) -> str:
    return "off" if access is None else "token" if access.token else "open (loopback)"


def services_of(app: Flask) -> Services:
    return app.extensions["talklike"]


def _install_edge(app: Flask) -> None:
    """JSON errors with explicit status codes, and one log line per request (never its body)."""

    @app.errorhandler(HTTPException)
    def http_error(err: HTTPException):
        return jsonify(error=err.name, message=err.description), err.code

    @app.errorhandler(Exception)
    def unexpected(err: Exception):
        log.exception("unhandled error", extra={"path": request.path})
        return jsonify(error="Internal Server Error", message="something went wrong; it has been logged"), 500

    @app.before_request
    def start_timer():
        g.started = time.perf_counter()

    @app.after_request
    def log_request(response):
        elapsed = (time.perf_counter() - g.get("started", time.perf_counter())) * 1000
        log.info("request", extra={"method": request.method, "path": request.path, "status": response.status_code,
                                   "ms": round(elapsed, 1)})
        return response
