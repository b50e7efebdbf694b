"""talklike: a bot that talks like someone you know, trained on your chat exports."""

__version__ = "0.1.0"
