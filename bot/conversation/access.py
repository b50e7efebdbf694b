"""Who may talk to the bot, and who may change a shared conversation.

`WhoMayTalk` is checked by every webhook before an event is kept and by the polling bot before it acts, so
nothing from a stranger is stored. Inside a group, the commands that change the conversation everyone
shares (bot/conversation/commands.py marks them) are for the group's administrators.
"""

from __future__ import annotations

from dataclasses import dataclass

ADMINS_ONLY = "In a group, only its administrators can change that."


@dataclass(frozen=True)
class WhoMayTalk:
    """Allowlists by platform id (strings); None lets everyone through."""

    users: frozenset[str] | None = None
    chats: frozenset[str] | None = None
    groups: bool = True  # False: the bot stays out of groups (it leaves any it is added to)

    def admits(self, user: object | None, chat: object | None = None, group: bool = False) -> bool:
        """May this user, in this chat (a group or not), talk to the bot?"""
        if group and not self.groups:
            return False
        if self.users is not None and (user is None or str(user) not in self.users):
            return False
        return self.chats is None or (chat is not None and str(chat) in self.chats)
