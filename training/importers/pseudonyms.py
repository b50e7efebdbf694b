"""Keyed pseudonyms for phone numbers ("Contact 3fa2c1"), and the key behind them.

A plain hash of a phone number is no pseudonym: phone numbers are few enough to hash them all, so anyone
holding a candidate number could confirm it against a corpus or a model's author table. The pseudonym
is instead an HMAC-SHA256 of the number's digits under a random secret key, so it can only be recomputed
by whoever holds the key.

The key is kept per user and machine (per deployment), outside every corpus, run directory and model
file, so that re-importing the same exports gives the same names (aliases, `--exclude-author`,
`--personas` keep working) while the corpus and the model travel without it:

1. `TALKLIKE_PSEUDONYM_KEY` (at least 16 characters), when set: for containers, CI, or to share one key
   between machines on purpose;
2. else the file `--pseudonym-key-file PATH` names;
3. else `$XDG_CONFIG_HOME/talklike/pseudonym.key` (`~/.config/talklike/pseudonym.key`).

A key file that does not exist is created with 32 random bytes (64 hex digits), readable by its owner
only. Deleting it makes the next import choose new pseudonyms.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import tempfile
from collections.abc import Callable

from talklike.errors import UserError

ENV = "TALKLIKE_PSEUDONYM_KEY"
_PROCESS_KEY = secrets.token_bytes(32)  # for callers that bring no key: stable within this process only
Key = bytes | Callable[[], bytes] | None  # the key, or what fetches it when a pseudonym is first needed


def pseudonym(phone: str, key: Key = None) -> str:
    """A stand-in for a phone number: "Contact " and 6 hex digits of the HMAC of its digits.

    Every spelling of one number ("+1 555-123-4567", "15551234567") gives the same pseudonym."""
    if callable(key):
        key = key()
    digits = "".join(str(int(char)) for char in phone if char.isdecimal())
    digest = hmac.new(_PROCESS_KEY if key is None else key, digits.encode(), hashlib.sha256).hexdigest()
    return "Contact " + digest[:6]


def default_key_path() -> str:
    config = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return os.path.join(config, "talklike", "pseudonym.key")


class PseudonymKey:
    """The key, read (or created) on first use: an import without phone-number senders never touches it."""

    def __init__(self, path: str | None = None):
        self.path = path
        self._key: bytes | None = None

    def __call__(self) -> bytes:
        if self._key is None:
            self._key = self._load()
        return self._key

    def _load(self) -> bytes:
        value = os.environ.get(ENV)
        if value is not None:
            if len(value) < 16:
                raise UserError(f"{ENV} is too short: use at least 16 random characters")
            return value.encode()
        path = self.path or default_key_path()
        try:
            with open(path, encoding="ascii") as handle:
                text = handle.read().strip()
        except FileNotFoundError:
            return _create(path)
        except (OSError, UnicodeDecodeError) as err:
            raise UserError(f"{path}: cannot read the pseudonym key ({getattr(err, 'strerror', None) or err})") from None
        try:
            key = bytes.fromhex(text)
        except ValueError:
            key = b""
        if len(key) < 16:
            raise UserError(f"{path}: not a pseudonym key (expected 64 hex digits); move it away to make a new one")
        return key


def _create(path: str) -> bytes:
    """Write a new random key to `path` atomically, readable by its owner only."""
    key = secrets.token_bytes(32)
    folder = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(folder, mode=0o700, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=folder, prefix=".pseudonym-key-")  # mode 0600
        with os.fdopen(handle, "w", encoding="ascii") as out:
            out.write(key.hex() + "\n")
        try:
            os.link(temporary, path)  # never replaces a key another import wrote meanwhile
        except FileExistsError:
            return PseudonymKey(path)()
        finally:
            os.unlink(temporary)
    except OSError as err:
        raise UserError(f"{path}: cannot create the pseudonym key ({err.strerror or err}); "
                        f"set {ENV} or --pseudonym-key-file") from None
    return key
