"""Kept so `gunicorn -c python:bot.gunicorn_conf` (the command of earlier releases) still works; the
settings live in `bot/app/gunicorn_conf.py`."""

from bot.app.gunicorn_conf import *  # noqa: F401,F403
from bot.app.gunicorn_conf import when_ready, worker_exit  # noqa: F401  (hooks gunicorn looks up by name)
