"""gunicorn settings for talklike (used by the Procfile and the Dockerfile: `-c python:bot.gunicorn_conf`).

Threaded workers (gthread): a reply waits on the engine's worker thread, not on the CPU, so one process
serves many conversations; each process loads the model after the fork (no preload), so every worker has
its own engine and torch thread pool. A model given by URL is downloaded once, by the master, after the
port is bound (Heroku only waits 60 s for the bind).
"""

from __future__ import annotations

import os

bind = f"0.0.0.0:{os.environ.get('PORT', '8000')}"
worker_class = "gthread"
workers = int(os.environ.get("WEB_CONCURRENCY", "1"))  # each worker holds torch and the model (benchmarks/bench_memory.py measures it)
threads = int(os.environ.get("GUNICORN_THREADS", "16"))
timeout = 60  # a worker silent this long is restarted
graceful_timeout = 30  # SIGTERM: in-flight requests and background replies get this long to finish
keepalive = 5
accesslog = None  # the app logs one JSON line per request (without bodies)
errorlog = "-"
loglevel = os.environ.get("TALKLIKE_LOG_LEVEL", "info").lower()


def on_starting(server):
    """gunicorn's own log lines pass the secret filter too (its loggers do not propagate to the app's)."""
    from bot.infra.log_format import install_redaction

    install_redaction()


on_reload = on_starting  # a reload (SIGHUP) sets gunicorn's handlers up anew


def when_ready(server):
    """Fetch a model URL into the cache before the workers start, so they do not all download it."""
    from bot.infra.config import AppConfig
    from bot.infra.model_source import is_url, model_path

    config = AppConfig.from_env()
    if config.model and is_url(config.model):
        model_path(config)


def worker_exit(server, worker):
    """Let background replies finish, then stop the engine (graceful stop under SIGTERM)."""
    app = getattr(worker, "wsgi", None)
    services = getattr(app, "extensions", {}).get("talklike") if app is not None else None
    if services is not None:
        services.close()
