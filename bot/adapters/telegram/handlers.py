"""The Telegram bot's handlers, and `build_application`, which wires them into a python-telegram-bot
Application (polling or webhook mode alike).

Private chats: every message gets a reply in the chat's persona. Groups: every message the bot sees is
read into the conversation (`aobserve`); it answers when @mentioned, when someone replies to one of its
messages, and on /say; optionally it chimes in when the next-speaker head says its persona speaks next.
Edited messages and channel posts are ignored: the conversation memory cannot be rewritten, and a
channel has nobody to answer. Every engine call runs on the engine's threads; the event loop never blocks.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
import weakref

from telegram import (
    BotCommand,
    ChatMember,
    ChatMemberRestricted,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    ReplyParameters,
    Update,
)
from telegram.constants import ChatAction, ChatType
from telegram.error import Forbidden, NetworkError, TelegramError
from telegram.ext import (
    Application,
    ApplicationBuilder,
    CallbackQueryHandler,
    ChatMemberHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from bot.adapters.telegram.config import TelegramConfig
from bot.adapters.telegram.incoming import (
    AuthorMatcher,
    Incoming,
    conversation_key,
    read_message,
    split_text,
    topic_of,
)
from bot.adapters.telegram.limiter import FloodLimiter
from bot.engine.batching import EngineBusy, EngineTimeout
from bot.engine.engine import UnknownConversation
from bot.infra.log_format import log_text
from bot.infra.stores import StoreError, StoreUnavailable
from talklike.errors import UserError

log = logging.getLogger(__name__)

COMMANDS = [
    ("start", "say hello"),
    ("help", "what I can do"),
    ("persona", "choose who I speak as"),
    ("personas", "list who I can speak as"),
    ("reset", "start our conversation over"),
    ("forget", "delete everything stored about this chat"),
    ("temperature", "show or set how adventurous my replies are"),
    ("say", "make me say something now"),
]
ALLOWED_UPDATES = ["message", "callback_query", "my_chat_member"]
HELP = """I answer in the style of a person from a chat history.
In a private chat I answer every message. In a group I read along and answer when you @mention me or reply \
to one of my messages.

/persona — choose who I speak as (/persona NAME)
/personas — list who I can speak as
/temperature [T] — show or set how adventurous my replies are (0 to 5; default 0.8)
/say — make me say something now
/reset — start our conversation over
/forget — delete everything stored about this chat
/help — this text"""
NOT_TEXT = "I can only read text (and the emoji of stickers). Tell me in words?"
APOLOGY = "Sorry, something went wrong on my side. It has been logged."
MEMBER = {ChatMember.MEMBER, ChatMember.ADMINISTRATOR, ChatMember.OWNER}


def _answers_errors(handler):
    """Expected failures (unknown persona, bad setting, busy engine) are told to the chat, not raised."""

    @functools.wraps(handler)
    async def wrapper(self: TelegramBot, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        try:
            await handler(self, update, context)
        except StoreUnavailable as err:  # the store is down (its text is for the operator's log, not the chat)
            log.warning("store unavailable", extra={"error": str(err)})
            if self.may_retry.get(update.update_id):
                self.store_failed.add(update.update_id)  # the webhook runner tries the update again later
                return
            await self._tell(update, context, "I'm busy right now; try again in a moment.")
        except StoreError as err:  # a conversation lock held too long, an unreadable record
            log.warning("store error", extra={"error": str(err)})
            await self._tell(update, context, "I'm busy right now; try again in a moment.")
        except UserError as err:
            await self._tell(update, context, str(err))
        except EngineBusy:
            await self._tell(update, context, "I'm busy right now; try again in a moment.")
        except EngineTimeout:
            await self._tell(update, context, "That took me too long; try again?")

    return wrapper


class TelegramBot:
    """The handlers, over one reply engine. `default_persona` speaks until a chat picks another."""

    def __init__(self, engine, default_persona: str, config: TelegramConfig | None = None):
        self.engine, self.default_persona = engine, default_persona
        self.config = config or TelegramConfig()
        self.authors = AuthorMatcher(engine.authors.personas, self.config)
        self._order: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()
        self._last_spoke: dict[str, float] = {}  # conversation → time.monotonic() of the bot's last message
        # Updates the webhook runner may try again when the store is down (update_id → True), and those that
        # met a store outage this time; both only touched on the event loop.
        self.may_retry: dict[int, bool] = {}
        self.store_failed: set[int] = set()
        self._topics: dict[int, set[int]] = {}  # chat → forum topics seen (forgotten with the chat)

    def install(self, application: Application) -> None:
        """Register every handler and the error handler on `application`."""
        only_new = filters.UpdateType.MESSAGE  # not edits, not channel posts
        for name, _ in COMMANDS:
            application.add_handler(CommandHandler(name, getattr(self, f"cmd_{name}"), filters=only_new))
        application.add_handler(CallbackQueryHandler(self.persona_button, pattern=r"^persona:"))
        application.add_handler(ChatMemberHandler(self.membership, ChatMemberHandler.MY_CHAT_MEMBER))
        application.add_handler(MessageHandler(only_new & filters.StatusUpdate.MIGRATE, self.migrated))
        application.add_handler(MessageHandler(only_new & filters.COMMAND, self.other_command))
        application.add_handler(MessageHandler(only_new & ~filters.COMMAND & ~filters.StatusUpdate.ALL, self.message))
        application.add_error_handler(self.on_error)

    # -- messages -----------------------------------------------------------------------------------
    @_answers_errors
    async def message(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Answer in private chats and when addressed in groups; read everything else along."""
        incoming = read_message(update.message, context.bot.bot, self.authors)
        self._remember_topic(incoming)
        if incoming.private and not incoming.text:
            await self._send(context, incoming, NOT_TEXT)
            return
        if incoming.addressed:
            await self._answer(context, incoming)
            return
        if not incoming.text:
            return
        try:
            async with self._in_order(incoming.conversation):
                await self.engine.aobserve(incoming.conversation, incoming.author, incoming.text)
        except (UserError, EngineBusy, EngineTimeout) as err:
            log.warning("could not read a group message", extra={"chat": incoming.chat_id, "error": str(err)})
            return
        await self._maybe_chime_in(context, incoming)

    async def _answer(self, context: ContextTypes.DEFAULT_TYPE, incoming: Incoming) -> None:
        async with self._in_order(incoming.conversation):
            persona = await self._persona(incoming.conversation)
            async with self._typing(context, incoming):
                if incoming.text:
                    text = await self.engine.areply(incoming.conversation, persona, incoming.text,
                                                    author=incoming.author)
                else:  # "@bot" alone, or a sticker without emoji in a group: speak up
                    text = await self.engine.aspeak(incoming.conversation, persona)
        if log_text():
            log.debug("reply", extra={"chat": incoming.chat_id, "text": text})
        await self._send(context, incoming, text, quote=not incoming.private)

    async def _maybe_chime_in(self, context: ContextTypes.DEFAULT_TYPE, incoming: Incoming) -> None:
        """Speak unasked when the persona is likely the next speaker (TELEGRAM_CHIME_IN), now and then."""
        threshold = self.config.chime_in
        if threshold is None:
            return
        last = self._last_spoke.get(incoming.conversation)
        if last is not None and time.monotonic() - last < self.config.chime_gap:
            return
        persona = await self._persona(incoming.conversation)
        try:
            odds = dict(await asyncio.to_thread(self.engine.next_speaker, incoming.conversation))
        except UnknownConversation:
            return
        if odds.get(persona, 0.0) < threshold:
            return
        self._last_spoke[incoming.conversation] = time.monotonic()
        async with self._in_order(incoming.conversation):
            text = await self.engine.aspeak(incoming.conversation, persona)
        await self._send(context, incoming, text)

    # -- commands -----------------------------------------------------------------------------------
    @_answers_errors
    async def cmd_start(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Greet, saying who speaks."""
        persona = await self._persona(self._key(update))
        await self._reply(update, context, f"Hi! I'm speaking as {persona}.\n\n{HELP}")

    @_answers_errors
    async def cmd_help(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """List the commands."""
        await self._reply(update, context, HELP)

    @_answers_errors
    async def cmd_persona(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """`/persona NAME` switches; `/persona` alone offers a keyboard of the personas."""
        key = self._key(update)
        if context.args:
            persona = self._persona_named(" ".join(context.args))
            await asyncio.to_thread(self.engine.configure, key, persona=persona)
            await self._reply(update, context, f"Now speaking as {persona}.")
            return
        current = await self._persona(key)
        buttons = [InlineKeyboardButton(("• " if p == current else "") + p, callback_data=_button_data(p, i))
                   for i, p in enumerate(self.engine.personas)]
        rows = [buttons[i : i + 2] for i in range(0, len(buttons), 2)]
        await self._reply(update, context, f"I'm speaking as {current}. Who should I be?",
                          reply_markup=InlineKeyboardMarkup(rows))

    @_answers_errors
    async def persona_button(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """A tap on the /persona keyboard."""
        query = update.callback_query
        data = query.data[len("persona:") :] if isinstance(query.data, str) else ""
        message = query.message
        index = data[1:] if data.startswith("#") else None
        stale = message is None or not hasattr(message, "chat") or not data or (
            index is not None and not (index.isdigit() and int(index) < len(self.engine.personas)))
        if stale:  # an old keyboard (the personas changed) or not one of ours
            await query.answer("This keyboard is too old; send /persona again.")
            return
        persona = self.engine.personas[int(index)] if index is not None else self._persona_named(data)
        key = conversation_key(message.chat.id, topic_of(message) if hasattr(message, "is_topic_message") else None)
        await asyncio.to_thread(self.engine.configure, key, persona=persona)
        await query.answer(f"Now speaking as {persona}")
        await query.edit_message_text(f"Now speaking as {persona}.")

    @_answers_errors
    async def cmd_personas(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """List the personas, marking the chat's."""
        current = await self._persona(self._key(update))
        lines = [("• " if p == current else "  ") + p for p in self.engine.personas]
        await self._reply(update, context, "I can speak as:\n" + "\n".join(lines))

    @_answers_errors
    async def cmd_reset(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Start the conversation over; the persona and settings stay."""
        await asyncio.to_thread(self.engine.reset, self._key(update))
        await self._reply(update, context, "Starting over: I no longer remember what we said.")

    @_answers_errors
    async def cmd_forget(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Delete everything stored about the conversation (memory, persona, settings)."""
        await asyncio.to_thread(self.engine.forget, self._key(update))
        await self._reply(update, context, "Done: everything stored about this chat is deleted.")

    @_answers_errors
    async def cmd_temperature(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """`/temperature` shows it, `/temperature 0.5` sets it."""
        key = self._key(update)
        if context.args:
            try:
                value = float(context.args[0].replace(",", "."))
            except ValueError:
                raise UserError(f"the temperature must be a number, like /temperature 0.7 (got {context.args[0]!r})") from None
            await asyncio.to_thread(self.engine.configure, key, temperature=value)
            await self._reply(update, context, f"Temperature set to {value:g}.")
            return
        record = await asyncio.to_thread(self.engine.store.get, key)
        value = (record.settings if record else {}).get("temperature", self.engine.config.settings.temperature)
        await self._reply(update, context, f"Temperature is {value:g} (0 = always the likeliest, up to 5).")

    @_answers_errors
    async def cmd_say(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Make the persona write the conversation's next message now."""
        message = update.message
        incoming = read_message(message, context.bot.bot, self.authors)
        async with self._in_order(incoming.conversation):
            persona = await self._persona(incoming.conversation)
            async with self._typing(context, incoming):
                text = await self.engine.aspeak(incoming.conversation, persona)
        await self._send(context, incoming, text)

    async def other_command(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """A command that is not ours: for another bot (`/cmd@otherbot`) → ignored; unknown → told (private)."""
        message = update.message
        words = (message.text or "").split()
        if not words:  # a command entity over blank text: nothing to answer
            return
        word = words[0]
        target = word.partition("@")[2]
        if target and target.lower() != (context.bot.username or "").lower():
            return
        if message.chat.type == ChatType.PRIVATE:
            await self._reply(update, context, f"I don't know {word.partition('@')[0]}. Try /help.")

    # -- membership ---------------------------------------------------------------------------------
    async def membership(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Added to a group: greet once. Removed: forget the group's conversations."""
        change = update.my_chat_member
        chat = change.chat
        was, now = _is_member(change.old_chat_member), _is_member(change.new_chat_member)
        if chat.type in (ChatType.PRIVATE, ChatType.CHANNEL) or was == now:
            return  # private: the user blocked/unblocked the bot; channels: nobody to greet
        key = conversation_key(chat.id)
        if now:
            log.info("added to a group", extra={"chat": chat.id})
            persona = await self._persona(key)
            await context.bot.send_message(chat.id, f"Hi everyone! I'm speaking as {persona}. "
                                                    "Mention me or reply to me and I'll answer; /help for more.")
            self._last_spoke[key] = time.monotonic()
            return
        log.info("removed from a group; forgetting it", extra={"chat": chat.id})
        keys = [key] + [conversation_key(chat.id, t) for t in self._topics.pop(chat.id, set())]
        for k in keys:
            await asyncio.to_thread(self.engine.forget, k)
            self._last_spoke.pop(k, None)

    async def migrated(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """A group became a supergroup (a new chat id): its conversation moves along."""
        message = update.message
        if message.migrate_to_chat_id is None:
            return  # the twin message, in the new supergroup
        old, new = conversation_key(message.chat.id), conversation_key(message.migrate_to_chat_id)
        record = await asyncio.to_thread(self.engine.store.get, old)
        if record is not None:
            await asyncio.to_thread(self.engine.store.put, new, record)
            await asyncio.to_thread(self.engine.forget, old)
        log.info("group migrated to a supergroup", extra={"chat": message.chat.id, "to": message.migrate_to_chat_id})

    # -- errors -------------------------------------------------------------------------------------
    async def on_error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Log what failed (never the message text), apologise in private chats; the app keeps running."""
        err = context.error
        chat = update.effective_chat if isinstance(update, Update) else None
        extra = {"update_id": getattr(update, "update_id", None), "chat": chat.id if chat else None}
        if isinstance(err, Forbidden):  # blocked by the user, or removed from the group
            log.warning("Telegram refused a message", extra={**extra, "error": str(err)})
            return
        if update is None and isinstance(err, NetworkError):  # polling hit a network blip; it retries itself
            log.warning("cannot reach the Bot API", extra={"error": str(err)})
            return
        log.error("a Telegram update failed", exc_info=err, extra=extra)
        if chat is not None and chat.type == ChatType.PRIVATE:
            with contextlib.suppress(TelegramError):
                await context.bot.send_message(chat.id, APOLOGY)

    # -- helpers ------------------------------------------------------------------------------------
    def _key(self, update: Update) -> str:
        message = update.effective_message
        return conversation_key(message.chat.id, topic_of(message))

    def _remember_topic(self, incoming: Incoming) -> None:
        if incoming.thread_id is not None:
            self._topics.setdefault(incoming.chat_id, set()).add(incoming.thread_id)

    async def _persona(self, conversation: str) -> str:
        """The conversation's persona if one was chosen (and is still allowed), else the default."""
        record = await asyncio.to_thread(self.engine.store.get, conversation)
        chosen = record.persona if record is not None else None
        return chosen if chosen in self.engine.personas else self.default_persona

    def _persona_named(self, name: str) -> str:
        """An allowed persona by name, any case; UnknownPersona lists the choices."""
        for persona in self.engine.personas:
            if persona.casefold() == name.strip().casefold():
                return persona
        return self.engine.check_persona(name.strip())

    def _in_order(self, conversation: str) -> asyncio.Lock:
        """One reply at a time per conversation, in the order the messages came."""
        lock = self._order.get(conversation)
        if lock is None:
            lock = asyncio.Lock()
            self._order[conversation] = lock
        return lock

    @contextlib.asynccontextmanager
    async def _typing(self, context: ContextTypes.DEFAULT_TYPE, incoming: Incoming):
        """'typing…' in the chat while the engine works (renewed, since one lasts 5 s)."""
        done = asyncio.Event()

        async def keep_typing() -> None:
            while not done.is_set():
                try:
                    await context.bot.send_chat_action(incoming.chat_id, ChatAction.TYPING,
                                                       message_thread_id=incoming.thread_id)
                except TelegramError as err:
                    log.debug("typing action failed: %s", err)
                    return
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(done.wait(), self.config.typing_interval)

        task = asyncio.create_task(keep_typing())
        try:
            yield
        finally:
            done.set()
            await task

    async def _send(self, context: ContextTypes.DEFAULT_TYPE, incoming: Incoming, text: str,
                    quote: bool = False) -> None:
        """Send `text` to the incoming message's chat and topic, in pieces of at most 4096 characters."""
        for i, piece in enumerate(split_text(text)):
            reply = ReplyParameters(incoming.message_id, allow_sending_without_reply=True) if quote and i == 0 else None
            await context.bot.send_message(incoming.chat_id, piece, message_thread_id=incoming.thread_id,
                                           reply_parameters=reply)
        self._last_spoke[incoming.conversation] = time.monotonic()

    async def _reply(self, update: Update, context: ContextTypes.DEFAULT_TYPE, text: str, **kwargs) -> None:
        message = update.effective_message
        for piece in split_text(text):
            await context.bot.send_message(message.chat.id, piece, message_thread_id=topic_of(message), **kwargs)

    async def _tell(self, update: Update, context: ContextTypes.DEFAULT_TYPE, text: str) -> None:
        """An expected failure, told where it happened (a callback query gets it as a notification)."""
        if update.callback_query is not None:
            await update.callback_query.answer(text[:200], show_alert=True)
            return
        message = update.effective_message
        if message is None:
            return
        if message.chat.type != ChatType.PRIVATE and not (message.text or "").startswith("/"):
            incoming = read_message(message, context.bot.bot, self.authors)
            if not incoming.addressed:
                return  # a group message the bot only read along: nobody asked
        await self._reply(update, context, text)


def _is_member(member: ChatMember | None) -> bool:
    if member is None:  # a malformed update
        return False
    return member.status in MEMBER or (isinstance(member, ChatMemberRestricted) and member.is_member)


def _button_data(persona: str, index: int) -> str:
    data = f"persona:{persona}"
    return data if len(data.encode()) <= 64 else f"persona:#{index}"  # Telegram allows 64 bytes


def build_application(engine, default_persona: str, token: str, api_url: str,
                      config: TelegramConfig | None = None, *, polling: bool = False) -> Application:
    """A python-telegram-bot Application calling `{api_url}/bot{token}/…`, with the handlers installed.
    `polling`: with an Updater that long-polls getUpdates (and sets the commands at start); otherwise
    updates are put into `application.update_queue` by the webhook."""
    config = config or TelegramConfig()
    bot = TelegramBot(engine, default_persona, config)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # its INFO lines carry the URL, and so the token
    builder = (ApplicationBuilder().token(token).base_url(f"{api_url}/bot").base_file_url(f"{api_url}/file/bot")
               .rate_limiter(FloodLimiter(config)).concurrent_updates(True))
    if polling:
        builder = builder.post_init(set_commands)
    else:
        builder = builder.updater(None)
    application = builder.build()
    bot.install(application)
    application.bot_data["talklike.bot"] = bot
    return application


async def set_commands(application: Application) -> None:
    """Register the command list shown in Telegram's menu (setMyCommands)."""
    await application.bot.set_my_commands([BotCommand(name, text) for name, text in COMMANDS])
