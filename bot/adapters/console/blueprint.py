"""The local test console: a page at `/` and the JSON API under `/api/` that serves it.

The page (static files under `static/`, no build step) picks a persona, chats with it, and lets several
personas talk among themselves. Conversation keys are `console:<id>`, the id chosen by the page (one per
browser tab). Every answer is JSON; a mistake in a request is a 4xx whose `message` names the field.
Message text reaches the logs only when `bot.infra.log_format.log_text()` allows it (DEBUG).
"""

from __future__ import annotations

import logging
import random
import time

from flask import Blueprint, jsonify, request
from werkzeug.http import HTTP_STATUS_CODES

from bot.adapters.console import validation as v
from bot.engine.batching import EngineBusy, EngineError, EngineTimeout
from bot.engine.engine import EmptyMessage, UnknownPersona
from bot.engine.settings import SettingsError
from bot.engine.simulation import next_turn
from bot.infra.log_format import log_text
from bot.infra.stores.base import LockTimeout, StoreError
from talklike.errors import UserError

log = logging.getLogger("talklike.console")

RETRY_AFTER_S = 2  # what a busy engine asks the page to wait
# The page loads its script and style from this server only; model output can never run as code.
CONTENT_SECURITY_POLICY = ("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
                           "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")


def make_blueprint(services) -> Blueprint:
    """The console blueprint over the app's `Services` (engine, config)."""
    bp = Blueprint("console", __name__, static_folder="static", static_url_path="/console/static")
    engine = services.engine

    @bp.get("/")
    def index():
        """The console page."""
        response = bp.send_static_file("index.html")
        response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
        response.headers["Cache-Control"] = "no-cache"
        return response

    @bp.get("/api/personas")
    def personas():
        """Who the model may speak as (with training message counts), the default, and a model summary."""
        card = engine.artifact.card or {}
        authors = card.get("authors") or {}
        bpc = (card.get("metrics") or {}).get("val_bpc_by_author") or {}
        listed = []
        for name in engine.personas:
            stats = authors.get(name) or {}
            listed.append(_present({"name": name, "messages": int(stats.get("messages") or 0),
                                    "chars": stats.get("chars"), "val_bpc": bpc.get(name)}))
        defaults = engine.config.settings
        return jsonify(personas=listed, default=services.default_persona, model=_model_summary(card),
                       settings={"temperature": defaults.temperature, "max_chars": defaults.max_chars},
                       limits={"max_turns": v.MAX_TURNS, "max_message_chars": v.MAX_MESSAGE_CHARS,
                               "max_simulated_personas": v.MAX_SIMULATED_PERSONAS})

    @bp.post("/api/chat")
    def chat():
        """Answer the page's message as the chosen persona."""
        body = v.json_body(request)
        key = v.conversation_key(body.get("conversation"))
        persona = v.text(body, "persona", required=False)
        persona = services.default_persona if persona is None else persona
        message = v.text(body, "message", max_chars=v.MAX_MESSAGE_CHARS)
        if not message.strip():
            raise v.ApiError("message is empty: write something to send", field="message")
        temperature = v.number(body, "temperature")
        _check_persona(engine, persona, "persona")
        _set_temperature(engine, key, temperature)
        started = time.perf_counter()
        reply = engine.reply(key, persona, message)
        ms = round((time.perf_counter() - started) * 1000, 1)
        extra = {"conversation": key, "persona": persona, "chars_in": len(message), "chars_out": len(reply), "ms": ms}
        if log_text():
            extra.update(text=message, reply=reply)
        log.info("console reply", extra=extra)
        return jsonify(conversation=body["conversation"], persona=persona, reply=reply, ms=ms)

    @bp.post("/api/reset")
    def reset():
        """Start the conversation over (its persona and temperature are kept)."""
        body = v.json_body(request)
        key = v.conversation_key(body.get("conversation"))
        existed = engine.reset(key)
        log.info("console reset", extra={"conversation": key, "existed": existed})
        return jsonify(conversation=body["conversation"], reset=existed)

    @bp.post("/api/simulate")
    def simulate():
        """The next `turns` messages of a group chat among `personas` (the next-speaker head picks who)."""
        body = v.json_body(request)
        key = v.conversation_key(body.get("conversation"))
        cast = v.names(body, "personas", v.MAX_SIMULATED_PERSONAS)
        turns = v.integer(body, "turns", default=1, low=1, high=v.MAX_TURNS)
        temperature = v.number(body, "temperature")
        seed = body.get("seed")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise v.ApiError("seed must be a whole number", field="seed")
        for name in cast:
            _check_persona(engine, name, "personas")
        _set_temperature(engine, key, temperature)
        rng = random.Random(seed)
        started = time.perf_counter()
        messages = []
        for _ in range(turns):
            speaker, said = next_turn(engine, key, cast, rng)
            messages.append({"author": speaker, "text": said})
        ms = round((time.perf_counter() - started) * 1000, 1)
        extra = {"conversation": key, "personas": cast, "turns": turns, "ms": ms}
        if log_text():
            extra["messages"] = messages
        log.info("console simulate", extra=extra)
        return jsonify(conversation=body["conversation"], messages=messages, ms=ms)

    @bp.get("/api/transcript")
    def transcript():
        """The conversation's last messages, persona and temperature: the page restores itself on reload."""
        key = v.conversation_key(request.args.get("conversation"))
        record = engine.store.get(key)
        if record is None:
            return jsonify(conversation=request.args["conversation"], persona=None, temperature=None, messages=[])
        named = set(engine.authors.personas)
        messages = [{"author": m["author"], "text": m["text"], "ts": m.get("ts"), "mine": m["author"] not in named}
                    for m in record.transcript]
        return jsonify(conversation=request.args["conversation"], persona=record.persona,
                       temperature=record.settings.get("temperature"), messages=messages)

    @bp.after_request
    def no_sniffing(response):
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        return response

    @bp.errorhandler(v.ApiError)
    def api_error(err: v.ApiError):
        return _error(err.status, err.message, err.field, err.headers)

    @bp.errorhandler(EmptyMessage)
    def empty_message(err: EmptyMessage):
        return _error(400, str(err), "message")

    @bp.errorhandler(UserError)
    def user_error(err: UserError):
        return _error(400, str(err))

    @bp.errorhandler(EngineBusy)
    def busy(err: EngineBusy):
        log.warning("console: engine busy", extra={"path": request.path})
        return _error(503, f"the model is busy; try again in {RETRY_AFTER_S} s",
                      headers={"Retry-After": str(RETRY_AFTER_S)})

    @bp.errorhandler(EngineTimeout)
    def timeout(err: EngineTimeout):
        log.warning("console: reply timed out", extra={"path": request.path})
        return _error(504, f"{err}; try again, or lower max_chars")

    @bp.errorhandler(LockTimeout)
    def conversation_busy(err: LockTimeout):
        return _error(503, "this conversation is still busy with an earlier reply; try again shortly",
                      headers={"Retry-After": str(RETRY_AFTER_S)})

    @bp.errorhandler(StoreError)
    def store_error(err: StoreError):
        log.error("console: conversation store failed", extra={"path": request.path, "reason": str(err)})
        return _error(503, "the conversation store is unavailable; try again shortly",
                      headers={"Retry-After": str(RETRY_AFTER_S)})

    @bp.errorhandler(EngineError)
    def stopped(err: EngineError):
        log.error("console: engine unavailable", extra={"path": request.path, "reason": str(err)})
        return _error(503, "the reply engine is not running; restart the server")

    return bp


def _check_persona(engine, name: str, field: str) -> None:
    try:
        engine.check_persona(name)
    except UnknownPersona as err:
        raise v.ApiError(str(err), field=field) from None


def _set_temperature(engine, key: str, temperature: float | None) -> None:
    """Keep the conversation's temperature for its later replies; 400 naming the field when out of range."""
    if temperature is None:
        return
    try:
        engine.configure(key, temperature=temperature)
    except SettingsError as err:
        raise v.ApiError(str(err), field="temperature") from None


def _error(status: int, message: str, field: str | None = None, headers: dict[str, str] | None = None):
    payload = {"error": HTTP_STATUS_CODES.get(status, "Error"), "message": message}
    if field is not None:
        payload["field"] = field
    return jsonify(payload), status, headers or {}


def _model_summary(card: dict) -> dict:
    """What the page shows about the model: name, size, training data and validation bits per character."""
    data = card.get("data") or {}
    metrics = card.get("metrics") or {}
    return _present({
        "name": card.get("name"), "created": card.get("created"), "preset": card.get("preset"),
        "parameters": card.get("parameters"), "step": card.get("step"), "quantized": card.get("quantized"),
        "val_bpc": metrics.get("val_bpc"), "messages": data.get("spoken_messages", data.get("messages")),
        "conversations": data.get("conversations"), "date_range": data.get("date_range"),
        "platforms": data.get("platforms"),
    })


def _present(d: dict) -> dict:
    return {k: value for k, value in d.items() if value is not None}
