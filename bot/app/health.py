"""Health endpoints: `/healthz` (the process answers) and `/readyz` (model loaded, store reachable)."""

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
        log.warning("not ready: store unreachable", extra={"store": engine.store.url})
        return jsonify(status="unavailable", reason=f"store unreachable: {err}"), 503
    if not engine.worker_alive():
        return jsonify(status="unavailable", reason="the reply engine has stopped"), 503
    return jsonify(status="ready", model=engine.artifact.path, personas=engine.personas, store=engine.store.url)
