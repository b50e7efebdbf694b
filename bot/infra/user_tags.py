"""Short tags that stand for a person in logs: a keyed hash of their platform id, never the id itself.

The key is TALKLIKE_LOG_KEY when set (so every worker and restart writes the same tag for one person), else
random for this process. Without the key, holding someone's id (or phone number) does not let you find
them in the logs.
"""

from __future__ import annotations

import hashlib
import hmac
import os

_key = os.urandom(32)


def configure(key: str | None) -> None:
    """Use `key` (TALKLIKE_LOG_KEY) from now on; None keeps this process's random key."""
    global _key
    if key:
        _key = hashlib.sha256(key.encode()).digest()


def user_tag(platform_id: object) -> str:
    """12 hex characters standing for `platform_id` in logs."""
    return hmac.new(_key, str(platform_id).encode(), hashlib.sha256).hexdigest()[:12]
