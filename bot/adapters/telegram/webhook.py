"""The Telegram webhook inside the Flask app: `POST /telegram/webhook`.

Telegram posts each update with the secret given to setWebhook in `X-Telegram-Bot-Api-Secret-Token`
(403 if it does not match); the body must be a JSON object (400 otherwise). The update is handed to the
python-telegram-bot Application, which runs on its own event loop in a background thread (one per
process, started by the first update), and the request is answered 200 at once. Request threads touch
that loop only through `asyncio.run_coroutine_threadsafe`, so gunicorn's threaded workers are fine.
Each update then goes through the webhook lifecycle (bot/infra/webhook_events.py): an update id seen before
is answered 200 and dropped (Telegram redelivers what it thinks was lost), a new one is kept until handled
(recovered by another worker if this one dies), retried while the store is down; closing waits for the
updates in flight.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import threading

from flask import Blueprint, abort, jsonify, request
from telegram import Update
from telegram.error import InvalidToken
from telegram.ext import Application

from bot.adapters.telegram.config import TelegramConfig
from bot.adapters.telegram.handlers import TelegramBot, build_application
from bot.adapters.telegram.update_attempt import handling
from bot.infra.stores import StoreError
from bot.infra.webhook_events import Attempt, Outcome

log = logging.getLogger(__name__)

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
DEDUPE_SECONDS = 24 * 3600  # Telegram keeps undelivered updates for 24 hours


class TelegramUnavailable(Exception):
    """The Application could not start (getMe failed: network down, token revoked)."""


class WebhookRunner:
    """The Application on an event loop in a daemon thread; `submit` hands it an update from any thread."""

    def __init__(self, services, config: TelegramConfig | None = None, start_timeout: float = 30.0):
        self.services = services
        self.config = config or TelegramConfig.from_env()
        TelegramBot(services.conversations, self.config)  # bad settings fail at start-up
        self.start_timeout = start_timeout
        self.application: Application | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._closed = False
        services.events.register_async("telegram:", DEDUPE_SECONDS, self._handle, loop=self._started_loop)

    def start(self) -> Application:
        """Start the loop thread and the Application (initialize: getMe; start) unless already running."""
        with self._lock:
            if self.application is not None:
                return self.application
            if self._closed:
                raise TelegramUnavailable("the Telegram webhook is shut down")
            c = self.services.config
            application = build_application(self.services.conversations, c.telegram_token, c.telegram_api_url,
                                            self.config, polling=False)
            loop = asyncio.new_event_loop()
            thread = threading.Thread(target=loop.run_forever, name="talklike-telegram", daemon=True)
            thread.start()
            try:
                asyncio.run_coroutine_threadsafe(_start(application), loop).result(self.start_timeout)
            except Exception as err:
                loop.call_soon_threadsafe(loop.stop)
                thread.join(5)
                loop.close()
                if isinstance(err, InvalidToken):  # its text quotes the token: a fixed line, no chained traceback
                    log.error("the Telegram bot could not start: Telegram refused TELEGRAM_TOKEN (InvalidToken)")
                    raise TelegramUnavailable("Telegram refused TELEGRAM_TOKEN") from None
                log.error("the Telegram bot could not start", extra={"error": f"{type(err).__name__}: {err}"})
                raise TelegramUnavailable(str(err)) from err
            self.application, self._loop, self._thread = application, loop, thread
            log.info("Telegram bot started", extra={"bot": application.bot.username})
            return application

    def _started_loop(self) -> asyncio.AbstractEventLoop:
        self.start()
        return self._loop

    def submit(self, data: dict) -> str:
        """Hand one update (a parsed JSON object) to the webhook lifecycle: "queued", "duplicate", or "dropped"
        (from a chat or person not allowed: nothing of it is kept). ValueError if it is not an update."""
        application = self.start()
        try:
            update = Update.de_json(data, application.bot)
        except Exception as err:  # de_json raises whatever a malformed field makes it raise
            raise ValueError(f"not a Telegram update: {type(err).__name__}") from err
        if update is None or not isinstance(update.update_id, int):
            raise ValueError("not a Telegram update: no update_id")
        _check_types(update)
        if not application.bot_data["talklike.bot"].admitted(update):
            log.info("telegram update from a chat or user not allowed dropped")
            return "dropped"
        item_id = f"telegram:update:{application.bot.id}:{update.update_id}"
        queued = self.services.events.accept(item_id, json.dumps(data, ensure_ascii=False).encode("utf-8"))
        return "queued" if queued else "duplicate"

    async def _handle(self, payload: bytes, attempt: Attempt) -> Outcome:
        """One try of an update (new, retried or recovered): the handlers report a store outage that may
        wait as `Outcome.RETRY`, and the lifecycle decides when to try again."""
        application = self.application
        update = Update.de_json(json.loads(payload), application.bot)
        with handling(attempt) as current:
            # Through the update processor, so PTB's concurrency limit holds as for queued updates.
            await application.update_processor.process_update(update, application.process_update(update))
        return current.outcome

    def close(self, timeout: float = 30.0) -> None:
        """Let updates in flight finish, stop the Application, end the loop thread (idempotent)."""
        with self._lock:
            self._closed = True
            application, loop, thread = self.application, self._loop, self._thread
            self.application = self._loop = self._thread = None
        if application is None:
            return
        self.services.events.wait_async(timeout)  # graceful: updates being answered finish first
        try:
            asyncio.run_coroutine_threadsafe(_stop(application), loop).result(timeout)
        except Exception as err:
            log.warning("the Telegram bot did not stop cleanly", extra={"error": f"{type(err).__name__}: {err}"})
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)
        if not thread.is_alive():
            loop.close()


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_types(update: Update) -> None:
    """ValueError for the wrongly typed fields the handlers read (Telegram never sends them; a forger might)."""
    member = update.my_chat_member
    if member is not None and (member.chat is None or not isinstance(member.chat.type, str)):
        raise ValueError("not a Telegram update: a membership change without its chat")
    for who in (update.effective_chat, update.effective_user):
        if who is None:
            continue
        if not _is_int(who.id):
            raise ValueError("not a Telegram update: a chat or user id is not an integer")
        for name in ("first_name", "last_name", "username", "title"):
            value = getattr(who, name, None)
            if value is not None and not isinstance(value, str):
                raise ValueError(f"not a Telegram update: a {name} is not text")
    message = update.effective_message
    if message is None or not hasattr(message, "text"):
        return
    if message.chat is None or not isinstance(message.chat.type, str):
        raise ValueError("not a Telegram update: a message without its chat")
    for name in ("text", "caption"):
        if getattr(message, name) is not None and not isinstance(getattr(message, name), str):
            raise ValueError(f"not a Telegram update: the message's {name} is not text")
    for entity in tuple(message.entities or ()) + tuple(message.caption_entities or ()):
        if not (isinstance(entity.type, str) and _is_int(entity.offset) and _is_int(entity.length)):
            raise ValueError("not a Telegram update: a malformed message entity")


async def _start(application: Application) -> None:
    await application.initialize()
    await application.start()


async def _stop(application: Application) -> None:
    await application.stop()
    await application.shutdown()


def make_blueprint(services, config: TelegramConfig | None = None) -> Blueprint:
    """The webhook blueprint. Its runner is `runner_of(app)`; `close_runner(app)` stops it (Services.close)."""
    runner = WebhookRunner(services, config)
    secret = (services.config.telegram_webhook_secret or "").encode()
    bp = Blueprint("telegram", __name__, url_prefix="/telegram")

    @bp.record_once
    def remember(state) -> None:
        state.app.extensions["talklike.telegram"] = runner

    services.closers.append(runner.close)  # Services.close stops the loop before the engine

    @bp.post("/webhook")
    def webhook():
        """One update from Telegram: check the secret, parse, queue, answer 200."""
        given = request.headers.get(SECRET_HEADER, "").encode("utf-8", "replace")
        if not secret or not hmac.compare_digest(given, secret):
            abort(403, description=f"missing or wrong {SECRET_HEADER}")
        try:
            data = request.get_json(force=True, silent=True)
        except RecursionError:  # nested deeper than the parser goes; `silent` only covers ValueError
            data = None
        if not isinstance(data, dict):
            abort(400, description="the body must be a JSON object (a Telegram update)")
        try:
            queued = runner.submit(data)
        except ValueError as err:
            abort(400, description=str(err))
        except StoreError as err:  # 503: Telegram delivers the update again later, nothing is lost
            log.error("telegram webhook: store unavailable", extra={"error": str(err)})
            abort(503, description="the conversation store is unavailable; retry later")
        except TelegramUnavailable:
            abort(503, description="the Telegram bot is not running; Telegram will deliver the update again")
        return jsonify(ok=True, duplicate=queued == "duplicate", dropped=queued == "dropped")

    return bp


def runner_of(app) -> WebhookRunner | None:
    return app.extensions.get("talklike.telegram")


def close_runner(app) -> None:
    """Stop the app's Telegram Application and its loop thread, if it has one."""
    runner = runner_of(app)
    if runner is not None:
        runner.close()
