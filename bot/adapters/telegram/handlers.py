"""The Telegram bot's handlers, and `build_application`, which wires them into a python-telegram-bot
Application (polling or webhook mode alike).

Private chats: every message gets a reply in the chat's persona. Groups: every message the bot sees is
read into the conversation; it answers when @mentioned, when someone replies to one of its messages, and on
/say; optionally it chimes in when the next-speaker head says its persona speaks next. Edited messages and
channel posts are ignored: the conversation memory cannot be rewritten, and a channel has nobody to answer.

What the bot does and says is the conversation layer's (bot/conversation/); this file parses updates and
renders the answers (inline keyboards, replies in the right topic, typing). Every conversation call runs on
the engine's threads; the event loop never blocks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import weakref

from telegram import BotCommand, ChatMember, ChatMemberRestricted, Update
from telegram.constants import ChatAction, ChatType
from telegram.error import Forbidden, NetworkError, TelegramError
from telegram.ext import (
    Application,
    ApplicationBuilder,
    ApplicationHandlerStop,
    CallbackQueryHandler,
    ChatMemberHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    TypeHandler,
    filters,
)

from bot.adapters.telegram.admins import GroupAdmins
from bot.adapters.telegram.config import TelegramConfig
from bot.adapters.telegram.incoming import (
    AuthorMatcher,
    Incoming,
    conversation_key,
    read_message,
    split_text,
    topic_of,
)
from bot.adapters.telegram.keyboard import PERSONA_DATA, persona_keyboard, persona_of_button
from bot.adapters.telegram.update_attempt import wait_for_store
from bot.conversation import Conversations, Said
from bot.conversation.access import ADMINS_ONLY
from bot.conversation.commands import TELEGRAM, menu
from bot.conversation.problems import APOLOGY
from bot.infra.log_format import log_text
from bot.infra.user_tags import user_tag

log = logging.getLogger(__name__)

COMMANDS = menu(TELEGRAM)  # (name, summary): the handlers and the menu registered with setMyCommands
ALLOWED_UPDATES = ["message", "callback_query", "my_chat_member"]
NOT_TEXT = "I can only read text (and the emoji of stickers). Tell me in words?"
MEMBER = {ChatMember.MEMBER, ChatMember.ADMINISTRATOR, ChatMember.OWNER}

__all__ = ["ALLOWED_UPDATES", "APOLOGY", "COMMANDS", "NOT_TEXT", "TelegramBot", "build_application"]


class TelegramBot:
    """The handlers, over one conversation layer."""

    def __init__(self, conversations: Conversations, config: TelegramConfig | None = None):
        self.conversations = conversations
        self.config = config or TelegramConfig()
        self.authors = AuthorMatcher(conversations.engine.authors.personas, self.config)
        self._order: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()
        self._last_spoke: dict[str, float] = {}  # conversation → time.monotonic() of the bot's last message
        self._topics: dict[int, set[int]] = {}  # chat → forum topics seen (forgotten with the chat)
        self.admins = GroupAdmins(self.config.admin_cache)

    def install(self, application: Application) -> None:
        """Register every handler and the error handler on `application`."""
        only_new = filters.UpdateType.MESSAGE  # not edits, not channel posts
        application.add_handler(TypeHandler(Update, self.gate), group=-1)  # before every other handler
        application.add_handler(CommandHandler([name for name, _ in COMMANDS], self.command, filters=only_new))
        application.add_handler(CallbackQueryHandler(self.persona_button, pattern=f"^{PERSONA_DATA}"))
        application.add_handler(ChatMemberHandler(self.membership, ChatMemberHandler.MY_CHAT_MEMBER))
        application.add_handler(MessageHandler(only_new & filters.StatusUpdate.MIGRATE, self.migrated))
        application.add_handler(MessageHandler(only_new & filters.COMMAND, self.other_command))
        application.add_handler(MessageHandler(only_new & ~filters.COMMAND & ~filters.StatusUpdate.ALL, self.message))
        application.add_error_handler(self.on_error)

    def admitted(self, update: Update) -> bool:
        """May this update be acted on (TELEGRAM_ALLOW_CHATS, TELEGRAM_ALLOW_USERS, TELEGRAM_ALLOW_GROUPS)?
        Membership changes always are: leaving a group nobody may use is an action too."""
        if update.my_chat_member is not None:
            return True
        chat, user = update.effective_chat, update.effective_user
        group = chat is not None and chat.type in (ChatType.GROUP, ChatType.SUPERGROUP)
        return self.conversations.admits(TELEGRAM, user.id if user else None, chat.id if chat else None, group)

    async def gate(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Stop an update from a chat or person not allowed before any handler sees it (polling mode; the
        webhook drops those before they are kept)."""
        if not self.admitted(update):
            chat = update.effective_chat
            log.info("telegram update from a chat or user not allowed dropped",
                     extra={"chat": user_tag(chat.id) if chat else None})
            raise ApplicationHandlerStop

    async def _call(self, method, *args, **kwargs) -> Said:
        """A conversation-layer call on the engine's threads."""
        return await self.conversations.engine.in_thread(method, *args, **kwargs)

    # -- messages -----------------------------------------------------------------------------------
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
        async with self._in_order(incoming.conversation):
            said = await self._call(self.conversations.observe, incoming.conversation, incoming.author, incoming.text,
                                    sender=incoming.sender)
        if said.problem is not None:
            log.warning("could not read a group message",
                        extra={"chat": user_tag(incoming.chat_id), "problem": said.problem.kind})
            wait_for_store(said)
            return
        await self._maybe_chime_in(context, incoming)

    async def _answer(self, context: ContextTypes.DEFAULT_TYPE, incoming: Incoming, unasked: bool = False) -> None:
        """The persona's answer to an incoming message (or, with no text, its next message)."""
        key = incoming.conversation
        async with self._in_order(key):
            async with self._typing(context, incoming):
                if incoming.text and not unasked:
                    said = await self._call(self.conversations.answer, key, incoming.text, incoming.author,
                                            sender=incoming.sender)
                else:  # /say, "@bot" alone, or a sticker without emoji in a group: speak up
                    said = await self._call(self.conversations.speak, key)
            if wait_for_store(said):
                return
            await self._disclose(context, incoming)  # in order: before any reply of this conversation
        if log_text() and said.by_model:
            log.debug("reply", extra={"chat": user_tag(incoming.chat_id), "text": said.text})
        await self._send(context, incoming, said.text, quote=not incoming.private and not unasked)

    async def _maybe_chime_in(self, context: ContextTypes.DEFAULT_TYPE, incoming: Incoming) -> None:
        """Speak unasked when the persona is likely the next speaker (TELEGRAM_CHIME_IN), now and then."""
        threshold = self.config.chime_in
        if threshold is None:
            return
        last = self._last_spoke.get(incoming.conversation)
        if last is not None and time.monotonic() - last < self.config.chime_gap:
            return
        if await self.conversations.engine.in_thread(self.conversations.likely_next, incoming.conversation) < threshold:
            return
        self._last_spoke[incoming.conversation] = time.monotonic()
        async with self._in_order(incoming.conversation):
            said = await self._call(self.conversations.speak, incoming.conversation)
        if said.problem is None:
            await self._disclose(context, incoming)
            await self._send(context, incoming, said.text)

    # -- commands -----------------------------------------------------------------------------------
    async def command(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """One of the conversation layer's commands (/persona, /temperature, /reset, ...; /say speaks)."""
        message = update.message
        incoming = read_message(message, context.bot.bot, self.authors)
        if (message.text or "").split()[0].lstrip("/").partition("@")[0].lower() == "say":
            await self._answer(context, incoming, unasked=True)
            return
        line = message.text or ""
        admin = incoming.private or not self.conversations.changes(line, TELEGRAM) or \
            await self.admins.is_admin(context.bot, message)
        said = await self._call(self.conversations.command, incoming.conversation, line, TELEGRAM, admin=admin,
                                sender=incoming.sender if incoming.private else None)
        if wait_for_store(said):
            return
        await self._disclose(context, incoming)
        keyboard = persona_keyboard(said.choices, self.conversations.names.all, self.conversations.persona_of(
            incoming.conversation)) if said.choices else None
        await self._reply(update, context, said.text, reply_markup=keyboard)

    async def persona_button(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """A tap on a persona keyboard."""
        query = update.callback_query
        message = query.message
        name = persona_of_button(query.data, self.conversations.names.all)
        if message is None or not hasattr(message, "chat") or name is None:  # an old keyboard, or not ours
            await query.answer("This keyboard is too old; send /persona again.")
            return
        key = conversation_key(message.chat.id, topic_of(message) if hasattr(message, "is_topic_message") else None)
        if message.chat.type != ChatType.PRIVATE and query.from_user.id not in await self.admins.of(context.bot,
                                                                                                     message.chat.id):
            await query.answer(ADMINS_ONLY, show_alert=True)
            return
        said = await self._call(self.conversations.switch, key, name)
        if wait_for_store(said):
            return
        await query.answer(said.text[:200], show_alert=said.problem is not None)
        if said.problem is None:
            await query.edit_message_text(said.text)

    async def other_command(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """A command that is not ours: for another bot (`/cmd@otherbot`) → ignored; unknown → told (private)."""
        message = update.message
        words = (message.text or "").split()
        if not words:  # a command entity over blank text: nothing to answer
            return
        target = words[0].partition("@")[2]
        if target and target.lower() != (context.bot.username or "").lower():
            return
        if message.chat.type == ChatType.PRIVATE:
            said = await self._call(self.conversations.command, conversation_key(message.chat.id), words[0], TELEGRAM)
            await self._reply(update, context, said.text)

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
            adder = change.from_user.id if change.from_user else None
            if not self.conversations.admits(TELEGRAM, adder, chat.id, group=True):
                log.info("added to a group it may not be in; leaving", extra={"chat": user_tag(chat.id)})
                await context.bot.leave_chat(chat.id)
                return
            log.info("added to a group", extra={"chat": user_tag(chat.id)})
            said = await self._call(self.conversations.greet_group, key)
            disclosure = await self._call(self.conversations.disclosure_for, key)
            await context.bot.send_message(chat.id, said.text if not disclosure else f"{said.text}\n{disclosure}")
            self._last_spoke[key] = time.monotonic()
            return
        self.admins.forget(chat.id)
        log.info("removed from a group; forgetting it", extra={"chat": user_tag(chat.id)})
        keys = [key] + [conversation_key(chat.id, t) for t in self._topics.pop(chat.id, set())]
        await self.conversations.engine.in_thread(self.conversations.forget_all, keys)
        for k in keys:
            self._last_spoke.pop(k, None)

    async def migrated(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """A group became a supergroup (a new chat id): its conversation moves along."""
        message = update.message
        if message.migrate_to_chat_id is None:
            return  # the twin message, in the new supergroup
        old, new = conversation_key(message.chat.id), conversation_key(message.migrate_to_chat_id)
        await self.conversations.engine.in_thread(self.conversations.move, old, new)
        log.info("group migrated to a supergroup", extra={"chat": user_tag(message.chat.id)})

    # -- errors -------------------------------------------------------------------------------------
    async def on_error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Log what failed (never the message text), apologise in private chats; the app keeps running."""
        err = context.error
        chat = update.effective_chat if isinstance(update, Update) else None
        extra = {"update_id": getattr(update, "update_id", None), "chat": user_tag(chat.id) if chat else None}
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
    async def _disclose(self, context: ContextTypes.DEFAULT_TYPE, incoming: Incoming) -> None:
        """The first time a conversation hears from the bot: the line that says a model writes here."""
        disclosure = await self._call(self.conversations.disclosure_for, incoming.conversation)
        if disclosure:
            await context.bot.send_message(incoming.chat_id, disclosure, message_thread_id=incoming.thread_id)

    def _remember_topic(self, incoming: Incoming) -> None:
        if incoming.thread_id is not None:
            self._topics.setdefault(incoming.chat_id, set()).add(incoming.thread_id)

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
        from telegram import ReplyParameters

        for i, piece in enumerate(split_text(text)):
            reply = ReplyParameters(incoming.message_id, allow_sending_without_reply=True) if quote and i == 0 else None
            await context.bot.send_message(incoming.chat_id, piece, message_thread_id=incoming.thread_id,
                                           reply_parameters=reply)
        self._last_spoke[incoming.conversation] = time.monotonic()

    async def _reply(self, update: Update, context: ContextTypes.DEFAULT_TYPE, text: str, **kwargs) -> None:
        message = update.effective_message
        for piece in split_text(text):
            await context.bot.send_message(message.chat.id, piece, message_thread_id=topic_of(message), **kwargs)


def _is_member(member: ChatMember | None) -> bool:
    if member is None:  # a malformed update
        return False
    return member.status in MEMBER or (isinstance(member, ChatMemberRestricted) and member.is_member)


def build_application(conversations: Conversations, token: str, api_url: str,
                      config: TelegramConfig | None = None, *, polling: bool = False) -> Application:
    """A python-telegram-bot Application calling `{api_url}/bot{token}/…`, with the handlers installed.
    `polling`: with an Updater that long-polls getUpdates (and sets the commands at start); otherwise
    updates are handed to `application.process_update` by the webhook."""
    from bot.adapters.telegram.limiter import FloodLimiter

    config = config or TelegramConfig()
    bot = TelegramBot(conversations, config)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # its INFO lines carry the URL, and so the token
    builder = (ApplicationBuilder().token(token).base_url(f"{api_url}/bot").base_file_url(f"{api_url}/file/bot")
               .rate_limiter(FloodLimiter(config)).concurrent_updates(True))
    builder = builder.post_init(set_commands) if polling else builder.updater(None)
    application = builder.build()
    bot.install(application)
    application.bot_data["talklike.bot"] = bot
    return application


async def set_commands(application: Application) -> None:
    """Register the command list shown in Telegram's menu (setMyCommands)."""
    await application.bot.set_my_commands([BotCommand(name, text) for name, text in COMMANDS])
