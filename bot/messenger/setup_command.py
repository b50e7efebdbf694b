"""`talklike messenger-setup` (being written)."""


def register(subparsers) -> None:
    return None
