"""`EventHandler`: one Messenger event, after the webhook has answered: parsed, handed to the conversation
layer, and its answer rendered through the Send API (quick replies for persona choices).

Text goes to the conversation's persona; `/personas`, `/persona NAME`, `/temperature`, `/reset`, `/forget`,
`/help` are the conversation layer's commands. Payloads (quick replies, postbacks): `GET_STARTED`,
`PERSONAS`, `PERSONA:<name>`, `RESET`, `FORGET`, `HELP`. What to say when something fails is the
conversation layer's too; this file only decides that a store outage waits for a retry (`Outcome.RETRY`,
while the webhook lifecycle allows one) instead of being told. Logs carry no message text unless DEBUG.
"""

from __future__ import annotations

import logging

from bot.adapters.messenger.events import Event, event_from_bytes
from bot.adapters.messenger.send_api import SendAPI, SendError, quick_reply
from bot.conversation import Conversations, Said
from bot.conversation.commands import MESSENGER
from bot.infra.log_format import log_text
from bot.infra.user_tags import user_tag
from bot.infra.webhook_events import Attempt, Outcome

log = logging.getLogger(__name__)

PERSONA_PAYLOAD = "PERSONA:"
PAYLOAD_COMMANDS = {"PERSONAS": "/personas", "RESET": "/reset", "FORGET": "/forget", "HELP": "/help",
                    "GET_STARTED": "/start"}
ATTACHMENT = "I can only read text for now, but I'm listening."
ATTACHMENT_MAX_CHARS = 80


class EventHandler:
    """Turns events into conversation calls and Send API calls; `handle` never raises."""

    def __init__(self, conversations: Conversations, send_api: SendAPI):
        self.conversations = conversations
        self.send_api = send_api

    def handle(self, payload: bytes, attempt: Attempt) -> Outcome:
        """Act on one event kept by the webhook lifecycle (a background thread, one event at a time per user)."""
        event = event_from_bytes(payload)
        log.info("messenger event", extra={"what": event.what, "user": user_tag(event.psid)})
        if log_text():
            log.debug("messenger event text", extra={"text": event.text, "payload": event.payload})
        said = self._answer(event)
        if said is None:
            return Outcome.DONE
        if said.problem is not None and said.problem.kind == "store_down" and attempt.may_retry:
            log.warning("messenger event waits for the store", extra={"user": user_tag(event.psid)})
            return Outcome.RETRY  # nothing sent: the lifecycle tries again later
        try:
            disclosure = self.conversations.disclosure_for(event.conversation)
            if disclosure:  # the bot's own line, before its first answer; never given to the model
                self.send_api.send_text(event.psid, disclosure)
            self.send_api.send_text(event.psid, said.text, self._buttons(said))
        except SendError as err:
            log.warning("messenger reply not delivered", extra={"error": str(err), "status": err.status,
                                                                "code": err.code, "user": user_tag(event.psid)})
        return Outcome.DONE

    def _answer(self, event: Event) -> Said | None:
        """What to say to the event (None: nothing)."""
        key = event.conversation
        if event.kind == "postback":
            return self._payload(event, event.payload or "", from_quick_reply=False)
        if event.kind == "attachment":
            said = self._reply(event, f"[{event.attachments[0]}]", settings={"max_chars": ATTACHMENT_MAX_CHARS})
            return Said(ATTACHMENT) if said.problem is not None and said.problem.kind == "invalid" else said
        if event.kind != "text":
            return None
        if event.payload:
            said = self._payload(event, event.payload, from_quick_reply=True)
            if said is not None:
                return said
        text = event.text.strip()
        if text.startswith("/"):
            return self.conversations.command(key, text, MESSENGER)
        return self._reply(event, event.text)

    def _payload(self, event: Event, payload: str, from_quick_reply: bool) -> Said | None:
        """A button or quick-reply payload of ours; None if it is not one."""
        if payload.startswith(PERSONA_PAYLOAD):
            return self.conversations.switch(event.conversation, payload[len(PERSONA_PAYLOAD):])
        if payload in PAYLOAD_COMMANDS:
            return self.conversations.command(event.conversation, PAYLOAD_COMMANDS[payload], MESSENGER)
        if not from_quick_reply:
            log.info("messenger postback ignored (unknown payload)", extra={"user": user_tag(event.psid)})
        return None

    def _reply(self, event: Event, text: str, settings: dict | None = None) -> Said:
        """The persona's answer, with the seen mark and typing indicators around the work."""
        self._action(event.psid, "mark_seen")
        self._action(event.psid, "typing_on")
        try:
            return self.conversations.answer(event.conversation, text, settings=settings, timestamp=event.timestamp)
        finally:
            self._action(event.psid, "typing_off")

    def _buttons(self, said: Said) -> list[dict] | None:
        """Quick replies for the personas a line offers (the platform shows at most 13)."""
        return [quick_reply(p, PERSONA_PAYLOAD + p) for p in said.choices] or None

    def _action(self, psid: str, action: str) -> None:
        try:
            self.send_api.sender_action(psid, action)
        except SendError as err:
            log.info("messenger sender action failed", extra={"action": action, "error": str(err)})


