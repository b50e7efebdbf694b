"""Health endpoints: `/healthz` (the process answers) and `/readyz` (model loaded, store reachable).

Both are public (a platform's health check has no credentials), so they say only `{"status": ...}`; why a
server is not ready goes to the log, and the details (model, personas, store) to the console's
authenticated `/api/status`.
"""

from __future__ import annotations

import logging

from flask import Blueprint, current_app, jsonify

from bot.infra.stores import StoreError

log = logging.getLogger(__name__)
health = Blueprint("health", __name__)


@health.get("/healthz")
def healthz():
    """Alive: the process answers HTTP."""
    return jsonify(status="ok")


@health.get("/readyz")
def readyz():
    """Ready: the model is loaded and the store answers; 503 with the reason otherwise."""
    services = current_app.extensions["talklike"]
    engine = services.engine
    try:
        engine.store.ping()
    except StoreError as err:
        log.warning("not ready: store unreachable", extra={"store": engine.store.url, "error": str(err)})
        return jsonify(status="unavailable"), 503
    if not engine.worker_alive():
        log.warning("not ready: the reply engine has stopped")
        return jsonify(status="unavailable"), 503
    return jsonify(status="ready")
