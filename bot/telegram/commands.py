"""`talklike telegram` and `talklike telegram-setup` (being written)."""


def register(subparsers) -> None:
    return None
