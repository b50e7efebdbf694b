"""The conversation layer: the chat protocol every platform shares (bot/conversation/conversations.py), the
command table and its help (commands.py), and what a person is told when a reply cannot be made
(problems.py). Imports neither Flask, telegram nor requests."""

from bot.conversation.conversations import Conversations, Said
from bot.conversation.problems import Problem, problem_of

__all__ = ["Conversations", "Problem", "Said", "problem_of"]
