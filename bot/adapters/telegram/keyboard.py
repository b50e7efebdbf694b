"""Inline keyboards that offer personas, and reading a tap on one back."""

from __future__ import annotations

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

PERSONA_DATA = "persona:"
MAX_DATA_BYTES = 64  # Telegram's limit on callback data


def persona_keyboard(choices: list[str], personas: list[str], current: str | None) -> InlineKeyboardMarkup:
    """Two buttons a row, the conversation's persona marked with a bullet. A name too long for the callback
    data travels as its index in `personas` (every allowed persona, in the model's order)."""
    buttons = [InlineKeyboardButton(("• " if name == current else "") + name,
                                    callback_data=_data(name, personas.index(name)))
               for name in choices]
    return InlineKeyboardMarkup([buttons[i : i + 2] for i in range(0, len(buttons), 2)])


def persona_of_button(data: object, personas: list[str]) -> str | None:
    """The persona a tap chose, or None for an old keyboard (the personas changed) or foreign data."""
    if not isinstance(data, str) or not data.startswith(PERSONA_DATA):
        return None
    value = data[len(PERSONA_DATA) :]
    if value.startswith("#"):
        index = value[1:]
        return personas[int(index)] if index.isdigit() and int(index) < len(personas) else None
    return value or None


def _data(name: str, index: int) -> str:
    data = PERSONA_DATA + name
    return data if len(data.encode()) <= MAX_DATA_BYTES else f"{PERSONA_DATA}#{index}"
