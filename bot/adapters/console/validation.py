"""Checks on the console API's request bodies: one clear message per mistake, naming the field.

Every check raises `ApiError`, which the blueprint answers as JSON
`{"error": "Bad Request", "message": "...", "field": "..."}` with the error's status code.
"""

from __future__ import annotations

import math
import re

from flask import Request

CONVERSATION_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
CONVERSATION_PREFIX = "console:"
MAX_MESSAGE_CHARS = 4000  # longer messages are refused; the engine reads only the last 2000 anyway
MAX_TURNS = 20  # simulated messages per /api/simulate call
MAX_SIMULATED_PERSONAS = 12


class ApiError(Exception):
    """A request the console API refuses; `field` names the part of the body at fault."""

    def __init__(self, message: str, status: int = 400, field: str | None = None,
                 headers: dict[str, str] | None = None):
        super().__init__(message)
        self.message = message
        self.status = status
        self.field = field
        self.headers = headers or {}


def json_body(request: Request) -> dict:
    """The request's JSON object; 400 for a missing, malformed or non-object body."""
    if not request.is_json:
        raise ApiError("the body must be JSON (send Content-Type: application/json)")
    body = request.get_json(silent=True)
    if body is None:
        raise ApiError("the body is not valid JSON")
    if not isinstance(body, dict):
        raise ApiError(f"the body must be a JSON object, got {_kind(body)}")
    return body


def conversation_key(value: object, field: str = "conversation") -> str:
    """`console:<id>` for a page-chosen id of 1-64 characters from A-Z, a-z, 0-9, _ and -."""
    if value is None:
        raise ApiError(f"{field} is required (an id of 1-64 characters: A-Z, a-z, 0-9, _ and -)", field=field)
    if not isinstance(value, str) or not CONVERSATION_ID.fullmatch(value):
        raise ApiError(f"{field} must be an id of 1-64 characters: A-Z, a-z, 0-9, _ and -", field=field)
    return CONVERSATION_PREFIX + value


def text(body: dict, field: str, *, required: bool = True, max_chars: int | None = None) -> str | None:
    """A string field; None when absent and not required."""
    value = body.get(field)
    if value is None:
        if required:
            raise ApiError(f"{field} is required", field=field)
        return None
    if not isinstance(value, str):
        raise ApiError(f"{field} must be a string, got {_kind(value)}", field=field)
    if max_chars is not None and len(value) > max_chars:
        raise ApiError(f"{field} is too long ({len(value)} characters; at most {max_chars})", field=field)
    return value


def number(body: dict, field: str) -> float | None:
    """An optional finite number (not a boolean); the engine checks its range."""
    value = body.get(field)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ApiError(f"{field} must be a number, got {_kind(value)}", field=field)
    return float(value)


def integer(body: dict, field: str, default: int, low: int, high: int) -> int:
    """An optional whole number in [low, high]."""
    value = body.get(field, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ApiError(f"{field} must be a whole number, got {_kind(value)}", field=field)
    if not low <= value <= high:
        raise ApiError(f"{field} must be between {low} and {high}, got {value}", field=field)
    return value


def query_integer(args, field: str, default: int, low: int, high: int) -> int:
    """A whole number from the query string; 400 naming the field otherwise."""
    raw = args.get(field)
    if raw is None:
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise ApiError(f"{field} must be a whole number from {low} to {high}", field=field)
    return int(raw)


def names(body: dict, field: str, max_items: int) -> list[str]:
    """A non-empty list of distinct strings (duplicates dropped, order kept)."""
    value = body.get(field)
    if value is None:
        raise ApiError(f"{field} is required (a list of persona names)", field=field)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ApiError(f"{field} must be a list of persona names (strings)", field=field)
    unique = list(dict.fromkeys(value))
    if not unique:
        raise ApiError(f"{field} must name at least one persona", field=field)
    if len(unique) > max_items:
        raise ApiError(f"{field} may name at most {max_items} personas, got {len(unique)}", field=field)
    return unique


def _kind(value: object) -> str:
    """The JSON name of a value's type, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number" if isinstance(value, int) or math.isfinite(value) else "a non-finite number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__
