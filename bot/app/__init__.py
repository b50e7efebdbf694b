"""The top floor: the Flask app factory (`create_app`) and the serving commands.

`gunicorn 'bot.app:create_app()'` names this package; the factory itself lives in `bot/app/factory.py` and is
imported on first use, so `talklike --help` (which registers the serving commands) does not load Flask.
"""

from __future__ import annotations

_FACTORY = {"create_app", "services_of", "build_engine", "load_config", "Services"}


def __getattr__(name: str):
    if name in _FACTORY:
        from bot.app import factory

        return getattr(factory, name)
    raise AttributeError(f"module 'bot.app' has no attribute {name!r}")
