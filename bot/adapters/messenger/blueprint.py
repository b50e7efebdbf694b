"""The Messenger webhook, `/messenger/webhook`: the HTTP edge of the Messenger adapter.

GET is the subscription handshake: `hub.mode=subscribe` with the right `hub.verify_token` echoes
`hub.challenge` as text; anything else is 403. POST is a webhook call, checked in this order:
- 413 when the body is larger than TALKLIKE_MAX_BODY_BYTES (reading it enforces the limit);
- 403 when `X-Hub-Signature-256` is missing or is not `sha256=` + the HMAC-SHA256 of the raw body bytes
  under the app secret (compared in constant time; the body is never re-serialized before checking);
- 400 when the body is not JSON, or not shaped like a webhook call;
- 404 when `object` is not "page" (Facebook's own sample does the same for other subscriptions).
Then it answers 200 at once; each new event goes through the webhook lifecycle (bot/infra/webhook_events.py:
deduplicated for a day by `messenger:mid:<mid>`, kept until answered, handled in the background in order per
user, retried while the store is down) to `handler.py`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging

from flask import Blueprint, Response, abort, request

from bot.adapters.messenger.events import BadPayload, event_from_bytes, event_to_bytes, parse_events
from bot.adapters.messenger.handler import EventHandler
from bot.adapters.messenger.send_api import SendAPI
from bot.conversation.commands import MESSENGER
from bot.infra.stores import StoreError
from bot.infra.user_tags import user_tag

log = logging.getLogger(__name__)

DEDUPE_TTL = 86400.0  # seconds; Facebook retries a delivery for at most a day
SIGNATURE_HEADER = "X-Hub-Signature-256"


def make_blueprint(services) -> Blueprint:
    """The webhook blueprint over `services`; its handler is also at `app.extensions["talklike.messenger"]`."""
    config = services.config
    handler = EventHandler(services.conversations, SendAPI(config.messenger_graph_url, config.messenger_page_token))
    services.closers.append(handler.send_api.close)
    services.events.register("messenger:", DEDUPE_TTL, handler.handle,
                             order_key=lambda payload: event_from_bytes(payload).psid)
    bp = Blueprint("messenger", __name__, url_prefix="/messenger")

    @bp.record_once
    def attach(state) -> None:
        state.app.extensions["talklike.messenger"] = handler

    @bp.get("/webhook")
    def verify():
        """The subscription handshake."""
        token = request.args.get("hub.verify_token", "")
        challenge = request.args.get("hub.challenge")
        if (request.args.get("hub.mode") == "subscribe" and challenge is not None
                and hmac.compare_digest(token.encode(), config.messenger_verify_token.encode())):
            log.info("messenger webhook verified")
            return Response(challenge, mimetype="text/plain")
        log.warning("messenger verification refused")
        abort(403, "verification failed")

    @bp.post("/webhook")
    def receive():
        """A webhook call: check, hand each event to the lifecycle, answer 200."""
        raw = _read_body()
        if not valid_signature(config.messenger_app_secret, raw, request.headers.get(SIGNATURE_HEADER)):
            log.warning("messenger webhook refused: bad signature",
                        extra={"signed": request.headers.get(SIGNATURE_HEADER) is not None, "bytes": len(raw)})
            abort(403, "bad or missing X-Hub-Signature-256")
        try:
            body = json.loads(raw)
            # \ud800-style escapes decode to lone surrogates, which no store or log can encode
            json.dumps(body, ensure_ascii=False).encode("utf-8")
        except (ValueError, RecursionError):
            abort(400, "the body is not JSON")
        except UnicodeEncodeError:
            abort(400, "the body holds text that is not valid Unicode (a lone surrogate)")
        if not isinstance(body, dict):
            abort(400, "the body is not a JSON object")
        if body.get("object") != "page":
            log.info("messenger webhook for another object ignored", extra={"object": str(body.get("object"))[:40]})
            abort(404, "only page subscriptions are handled")
        try:
            events = parse_events(body)
        except BadPayload as err:
            abort(400, str(err))
        for event in events:
            key = event.dedupe_key
            if key is None:
                log.info("messenger event ignored", extra={"what": event.what})
                continue
            if not services.conversations.admits(MESSENGER, event.psid):  # before anything is kept
                log.info("messenger event from a user not on MESSENGER_ALLOW_USERS dropped",
                         extra={"user": user_tag(event.psid)})
                continue
            try:
                duplicate = not services.events.accept(key, event_to_bytes(event))
            except StoreError as err:  # 503: Facebook delivers the call again later, nothing is lost
                log.error("messenger webhook: store unavailable", extra={"error": str(err)})
                abort(503, "the conversation store is unavailable; retry later")
            if duplicate:
                log.info("messenger redelivery dropped", extra={"what": event.what})
        return Response("EVENT_RECEIVED", mimetype="text/plain")

    return bp


def _read_body() -> bytes:
    """The raw body; 413 past MAX_CONTENT_LENGTH. (`get_data()` silently cuts a chunked body at the limit;
    reading on at the limit makes werkzeug's stream raise 413 instead.)"""
    limit = request.max_content_length
    if limit is None:
        return request.get_data(cache=True)
    if request.content_length is not None and request.content_length > limit:
        abort(413)
    raw = request.stream.read(limit)
    if len(raw) == limit and request.stream.read(1):  # the read past a chunked body's limit raises 413
        abort(413)
    return raw


def valid_signature(secret: str, raw: bytes, header: str | None) -> bool:
    """Is `header` "sha256=<hex HMAC-SHA256(secret, raw)>"? Constant-time comparison."""
    if not header or not header.startswith("sha256="):
        return False
    expected = hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), header[len("sha256="):].strip().lower().encode("latin-1", "replace"))
