"""`EventHandler`: what the bot does with one Messenger event, after the webhook has answered.

Text goes to the engine as the user's persona (chosen with quick replies, `/persona NAME` or the menu; the
default persona until then) and the reply goes back through the Send API. Commands: `/personas`,
`/persona NAME`, `/reset`, `/forget`, `/help`. Payloads (quick replies, postbacks): `GET_STARTED`,
`PERSONAS`, `PERSONA:<name>`, `RESET`, `FORGET`, `HELP`.

Errors: a busy or slow engine gets a "try again" line; an expected failure (`UserError`) its own message;
anything else is logged with its traceback and answered with an apology. A Send API failure is logged; the
conversation state the engine saved before sending is kept. Logs carry no message text unless DEBUG.
"""

from __future__ import annotations

import hashlib
import logging

from bot.adapters.messenger.events import Event
from bot.adapters.messenger.send_api import MAX_QUICK_REPLIES, SendAPI, SendError, quick_reply
from bot.engine.batching import EngineError
from bot.engine.engine import EmptyMessage
from bot.infra.log_format import log_text
from bot.infra.stores.base import StoreError, StoreUnavailable
from talklike.errors import UserError

log = logging.getLogger(__name__)

PERSONA_PAYLOAD = "PERSONA:"
BUSY = "I'm a bit busy right now, please try again in a minute."
APOLOGY = "Sorry, something went wrong on my side. Please try again."
ATTACHMENT = "I can only read text for now, but I'm listening."
ATTACHMENT_MAX_CHARS = 80
HELP = (
    "I write like someone from a chat. Just say something, or:\n"
    "/personas – who I can be\n"
    "/persona NAME – talk to NAME\n"
    "/reset – start our conversation over\n"
    "/forget – delete everything I keep about you\n"
    "/help – this message"
)


class EventHandler:
    """Turns events into engine calls and Send API calls; `handle` never raises."""

    def __init__(self, services, send_api: SendAPI):
        self.services = services
        self.engine = services.engine
        self.send_api = send_api

    def handle(self, event: Event, may_retry: bool = False) -> bool:
        """Act on one event (runs on a background thread, one event at a time per user). False when the
        store was unavailable and `may_retry`: nothing was sent, try the event again later."""
        log.info("messenger event", extra={"what": event.what, "user": user_tag(event.psid)})
        if log_text():
            log.debug("messenger event text", extra={"text": event.text, "payload": event.payload})
        try:
            if event.kind == "text":
                self._text(event)
            elif event.kind == "postback":
                self._payload(event, event.payload or "")
            elif event.kind == "attachment":
                self._attachment(event)
        except SendError as err:
            log.warning("messenger reply not delivered", extra={"error": str(err), "status": err.status,
                                                                "code": err.code, "user": user_tag(event.psid)})
        except StoreUnavailable as err:  # down for now: the answer can wait until it is back
            log.warning("messenger event waits for the store", extra={"error": str(err), "user": user_tag(event.psid),
                                                                      "retry": may_retry})
            if may_retry:
                return False
            self._try_send(event.psid, BUSY)
        except Exception:
            log.exception("messenger event failed", extra={"what": event.what, "user": user_tag(event.psid)})
            self._try_send(event.psid, APOLOGY)
        return True

    # -- kinds of events ----------------------------------------------------------------------------
    def _text(self, event: Event) -> None:
        """A quick reply of ours, a command, or a message for the engine."""
        if event.payload and self._payload(event, event.payload, from_quick_reply=True):
            return
        text = event.text.strip()
        if text.startswith("/"):
            self._command(event, text)
        else:
            self._reply(event, event.text)

    def _attachment(self, event: Event) -> None:
        """A short reply in persona to "[image]" (or the like); a polite line if that cannot be done."""
        try:
            self._reply(event, f"[{event.attachments[0]}]", settings={"max_chars": ATTACHMENT_MAX_CHARS},
                        fallback=ATTACHMENT)
        except UserError:
            self.send_api.send_text(event.psid, ATTACHMENT)

    def _payload(self, event: Event, payload: str, from_quick_reply: bool = False) -> bool:
        """Act on a button or quick-reply payload; False if it is not one of ours."""
        if payload.startswith(PERSONA_PAYLOAD):
            self._switch(event, payload[len(PERSONA_PAYLOAD):])
        elif payload == "GET_STARTED":
            persona = self.persona_of(event.conversation)
            self.send_api.send_text(
                event.psid, f"Hi! I write like the people of a chat. You're talking to {persona}: say something, "
                            "or pick someone else below. /help lists what I understand.", self.persona_buttons())
        elif payload == "PERSONAS":
            self._personas(event)
        elif payload == "RESET":
            self._reset(event)
        elif payload == "FORGET":
            self._forget(event)
        elif payload == "HELP":
            self.send_api.send_text(event.psid, HELP)
        else:
            if not from_quick_reply:
                log.info("messenger postback ignored (unknown payload)", extra={"user": user_tag(event.psid)})
            return False
        return True

    def _command(self, event: Event, text: str) -> None:
        """A slash command (unknown ones get the help)."""
        name, _, arg = text.partition(" ")
        name, arg = name.lower(), arg.strip()
        if name in ("/help", "/start"):
            self.send_api.send_text(event.psid, HELP)
        elif name == "/personas" or (name == "/persona" and not arg):
            self._personas(event)
        elif name == "/persona":
            self._switch(event, arg)
        elif name == "/reset":
            self._reset(event)
        elif name == "/forget":
            self._forget(event)
        else:
            self.send_api.send_text(event.psid, f"I don't know {name[:40]}.\n{HELP}")

    # -- what the commands do -----------------------------------------------------------------------
    def _reply(self, event: Event, text: str, settings: dict | None = None, fallback: str | None = None) -> None:
        """The engine's answer as the user's persona, with typing indicators around the work."""
        self._action(event.psid, "mark_seen")
        self._action(event.psid, "typing_on")
        try:
            reply = self.engine.reply(event.conversation, self.persona_of(event.conversation), text,
                                      settings=settings, timestamp=event.timestamp)
        except StoreUnavailable:
            raise  # `handle` decides: wait for the store, or say we are busy
        except (EngineError, StoreError) as err:  # busy or slow (a lock held too long): never its text to users
            log.warning("engine could not answer", extra={"error": type(err).__name__, "user": user_tag(event.psid)})
            reply = BUSY
        except EmptyMessage:
            reply = fallback
        except UserError as err:
            if fallback is not None:
                raise
            reply = str(err)
        finally:
            self._action(event.psid, "typing_off")
        if reply:
            self.send_api.send_text(event.psid, reply)

    def _switch(self, event: Event, name: str) -> None:
        """Talk as `name` from now on (any case), or offer the choices."""
        found = self.find_persona(name)
        if found is None:
            self.send_api.send_text(event.psid, f"I can't be {name[:40] or 'nobody'}. Choose someone:",
                                    self.persona_buttons())
            return
        self.engine.configure(event.conversation, persona=found)
        self.send_api.send_text(event.psid, f"You're now talking to {found}.")

    def _personas(self, event: Event) -> None:
        """List the personas, with quick replies to pick one."""
        current = self.persona_of(event.conversation)
        names = ", ".join(self.engine.personas)
        self.send_api.send_text(event.psid, f"I can be: {names}. Now: {current}. Pick one:", self.persona_buttons())

    def _reset(self, event: Event) -> None:
        """/reset: start the conversation over, keeping the persona."""
        self.engine.reset(event.conversation)
        self.send_api.send_text(event.psid, f"Let's start over. You're talking to {self.persona_of(event.conversation)}.")

    def _forget(self, event: Event) -> None:
        """/forget: delete everything stored about the user."""
        self.engine.forget(event.conversation)
        self.send_api.send_text(event.psid, "Done: I deleted our conversation and your choice of persona.")

    # -- helpers ------------------------------------------------------------------------------------
    def persona_of(self, conversation: str) -> str:
        """The conversation's persona if it is still allowed, else the default persona."""
        record = self.engine.store.get(conversation)
        persona = record.persona if record is not None else None
        return persona if persona in self.engine.personas else self.services.default_persona

    def find_persona(self, name: str) -> str | None:
        """The allowed persona called `name` (exact, else ignoring case), or None."""
        if name in self.engine.personas:
            return name
        folded = {p.casefold(): p for p in self.engine.personas}
        return folded.get(name.strip().casefold())

    def persona_buttons(self) -> list[dict]:
        """Quick replies for the personas with the most messages (the platform shows at most 13)."""
        authors = (self.engine.artifact.card or {}).get("authors") or {}
        ranked = sorted(self.engine.personas, key=lambda p: -int((authors.get(p) or {}).get("messages") or 0))
        return [quick_reply(p, PERSONA_PAYLOAD + p) for p in ranked[:MAX_QUICK_REPLIES]]

    def _action(self, psid: str, action: str) -> None:
        try:
            self.send_api.sender_action(psid, action)
        except SendError as err:
            log.info("messenger sender action failed", extra={"action": action, "error": str(err)})

    def _try_send(self, psid: str, text: str) -> None:
        try:
            self.send_api.send_text(psid, text)
        except SendError as err:
            log.warning("messenger apology not delivered", extra={"error": str(err), "user": user_tag(psid)})


def user_tag(psid: str) -> str:
    """A short stable tag for a user in logs (not the PSID itself)."""
    return hashlib.sha256(psid.encode()).hexdigest()[:12]
