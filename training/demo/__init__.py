"""Deterministic demo data: five personas with distinct, machine-checkable styles, a generated group chat
(`chat.generate_chat`), writers for the real export formats (`writers`), and `python -m training.demo.generate`
to write a Telegram + Messenger export pair for `make demo` and the tests."""
