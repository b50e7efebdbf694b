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

from flask import Blueprint, current_app, jsonify, request
from werkzeug.http import HTTP_STATUS_CODES

from bot.adapters.console import validation as v
from bot.adapters.console.access import ConsoleAccess
from bot.conversation import Problem, Said, problem_of
from bot.infra.log_format import log_text

log = logging.getLogger("talklike.console")

# The page loads its script and style from this server only; model output can never run as code.
CONTENT_SECURITY_POLICY = ("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
                           "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")


class Failed(Exception):
    """A conversation request that could not be done, with what the conversation layer says about it."""

    def __init__(self, problem: Problem, field: str | None = None):
        super().__init__(problem.text)
        self.problem, self.field = problem, field or problem.field


def _done(said: Said, field: str | None = None) -> Said:
    """`said` if the request succeeded; Failed (answered with its problem's status) otherwise."""
    if said.problem is not None:
        raise Failed(said.problem, field)
    return said


LOGIN_CONTENT_SECURITY_POLICY = CONTENT_SECURITY_POLICY.replace("form-action 'none'", "form-action 'self'")
PERSONAS_LISTED = 200  # a model of a big public chat has thousands; the page searches for the rest
console = Blueprint("console", __name__, static_folder="static", static_url_path="/console/static")


def install(app, access: ConsoleAccess) -> None:
    """Serve the console on `app`; its views find the conversation layer in the app's `Services`, and `access`
    decides who may reach them."""
    app.extensions["talklike.console"] = access
    app.register_blueprint(console)


def _conversations():
    return current_app.extensions["talklike"].conversations


@console.before_request
def gate():
    """Loopback or the configured host only; with a token, only whoever presents it."""
    return current_app.extensions["talklike.console"].refuse(request)


@console.route("/console/login", methods=["GET", "POST"])
def login():
    """The sign-in page of a protected console, and its form."""
    access = current_app.extensions["talklike.console"]
    if request.method == "POST":
        return access.login(request)
    return _page("login.html", LOGIN_CONTENT_SECURITY_POLICY, "no-store")


@console.get("/")
def index():
    """The console page."""
    return _page("index.html", CONTENT_SECURITY_POLICY, "no-cache")


def _page(name: str, content_security_policy: str, cache_control: str):
    """A static page with its own Content-Security-Policy and caching rule."""
    response = console.send_static_file(name)
    response.headers["Content-Security-Policy"] = content_security_policy
    response.headers["Cache-Control"] = cache_control
    return response


@console.get("/api/personas")
def personas():
    """Who the model may speak as, the most active first (at most `limit`; `q` finds names containing it),
    with training message counts, how many there are in all, the default, and a model summary."""
    conversations = _conversations()
    engine = conversations.engine
    card = engine.artifact.card or {}
    authors = card.get("authors") or {}
    bpc = (card.get("metrics") or {}).get("val_bpc_by_author") or {}
    query = request.args.get("q", "")[:64]
    limit = v.query_integer(request.args, "limit", default=PERSONAS_LISTED, low=1, high=1000)
    names = conversations.names.matching(query, limit=limit) if query.strip() else conversations.names.top(limit)
    if not query.strip() and conversations.default_persona not in names:
        names.append(conversations.default_persona)  # the page starts with it selected
    listed = []
    for name in names:
        stats = authors.get(name) or {}
        listed.append(_present({"name": name, "messages": int(stats.get("messages") or 0),
                                "chars": stats.get("chars"), "val_bpc": bpc.get(name)}))
    defaults = engine.config.settings
    return jsonify(personas=listed, total=len(conversations.names.all), default=conversations.default_persona,
                   model=_model_summary(card),
                   settings={"temperature": defaults.temperature, "max_chars": defaults.max_chars},
                   limits={"max_turns": v.MAX_TURNS, "max_message_chars": v.MAX_MESSAGE_CHARS,
                           "max_simulated_personas": v.MAX_SIMULATED_PERSONAS})


@console.get("/api/status")
def status():
    """What `/readyz` does not tell strangers: the model file, the personas and the store."""
    conversations = _conversations()
    return jsonify(**conversations.engine.status(), persona_names=conversations.names.all)


@console.post("/api/chat")
def chat():
    """Answer the page's message as the chosen persona."""
    conversations = _conversations()
    body = v.json_body(request)
    key = v.conversation_key(body.get("conversation"))
    persona = v.text(body, "persona", required=False)
    persona = conversations.default_persona if persona is None else persona
    message = v.text(body, "message", max_chars=v.MAX_MESSAGE_CHARS)
    if not message.strip():
        raise v.ApiError("message is empty: write something to send", field="message")
    temperature = v.number(body, "temperature")
    _check_persona(conversations, persona, "persona")
    if temperature is not None:
        _done(conversations.temperature(key, temperature), field="temperature")
    started = time.perf_counter()
    reply = _done(conversations.answer(key, message, persona=persona)).text
    ms = round((time.perf_counter() - started) * 1000, 1)
    extra = {"conversation": key, "persona": persona, "chars_in": len(message), "chars_out": len(reply), "ms": ms}
    if log_text():
        extra.update(text=message, reply=reply)
    log.info("console reply", extra=extra)
    return jsonify(conversation=body["conversation"], persona=persona, reply=reply, ms=ms)


@console.post("/api/reset")
def reset():
    """Start the conversation over (its persona and temperature are kept)."""
    return _clear("reset", "reset")


@console.post("/api/who")
def who():
    """Which personas would most likely have written `text` (after the conversation `conversation`, if given)."""
    conversations = _conversations()
    body = v.json_body(request)
    text = v.text(body, "text", max_chars=v.MAX_MESSAGE_CHARS)
    if not text.strip():
        raise v.ApiError("text is empty: write the message to attribute", field="text")
    key = v.conversation_key(body["conversation"]) if body.get("conversation") is not None else None
    said = _done(conversations.who(text, key), field="text")
    return jsonify(ranking=said.ranking)


@console.post("/api/forget")
def forget():
    """Delete everything kept about the conversation: its memory, transcript, persona and temperature."""
    return _clear("forget", "forgotten")


def _clear(action: str, answer: str):
    """Reset or forget the request's conversation; `answer` names whether there was anything to clear."""
    body = v.json_body(request)
    key = v.conversation_key(body.get("conversation"))
    said = _done(getattr(_conversations(), action)(key))
    log.info(f"console {action}", extra={"conversation": key, "existed": said.existed})
    return jsonify(conversation=body["conversation"], **{answer: said.existed})


@console.post("/api/simulate")
def simulate():
    """The next `turns` messages of a group chat among `personas` (the next-speaker head picks who)."""
    conversations = _conversations()
    body = v.json_body(request)
    key = v.conversation_key(body.get("conversation"))
    cast = v.names(body, "personas", v.MAX_SIMULATED_PERSONAS)
    turns = v.integer(body, "turns", default=1, low=1, high=v.MAX_TURNS)
    temperature = v.number(body, "temperature")
    seed = body.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise v.ApiError("seed must be a whole number", field="seed")
    for name in cast:
        _check_persona(conversations, name, "personas")
    if temperature is not None:
        _done(conversations.temperature(key, temperature), field="temperature")
    rng = random.Random(seed)
    started = time.perf_counter()
    deadline = time.monotonic() + conversations.engine.config.timeout  # one deadline for all the turns
    messages = []
    for _ in range(turns):
        said = _done(conversations.simulate(key, cast, rng, deadline))
        messages.append({"author": said.persona, "text": said.text})
    ms = round((time.perf_counter() - started) * 1000, 1)
    extra = {"conversation": key, "personas": cast, "turns": turns, "ms": ms}
    if log_text():
        extra["messages"] = messages
    log.info("console simulate", extra=extra)
    return jsonify(conversation=body["conversation"], messages=messages, ms=ms)


@console.get("/api/transcript")
def transcript():
    """The conversation's last messages, persona and temperature: the page restores itself on reload."""
    conversations = _conversations()
    key = v.conversation_key(request.args.get("conversation"))
    try:
        view = conversations.view(key)
    except Exception as err:
        raise Failed(problem_of(err)) from err
    named = set(conversations.engine.authors.personas)
    messages = [{"author": m["author"], "text": m["text"], "ts": m.get("ts"), "mine": m["author"] not in named}
                for m in view.messages]
    return jsonify(conversation=request.args["conversation"], persona=view.persona,
                   temperature=view.temperature, messages=messages)


@console.after_request
def no_sniffing(response):
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    return response


@console.errorhandler(v.ApiError)
def api_error(err: v.ApiError):
    return _error(err.status, err.message, err.field, err.headers)


@console.errorhandler(Failed)
def failed(err: Failed):
    problem = err.problem
    if problem.kind != "invalid":
        log.warning("console: request not done", extra={"path": request.path, "problem": problem.kind})
    headers = {"Retry-After": str(problem.retry_after)} if problem.retry_after else None
    return _error(problem.status, problem.text, err.field if problem.kind == "invalid" else None, headers)


def _check_persona(conversations, name: str, field: str) -> None:
    if not conversations.available(name):
        raise v.ApiError(f"persona {name!r} is not available here; choose from: "
                         f"{', '.join(conversations.names.all)}", field=field)


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
