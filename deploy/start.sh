#!/bin/sh
# Container start: serve the model baked into the image (deploy/model.pt) unless TALKLIKE_MODEL or
# MODEL_URL names another; gunicorn binds $PORT at once and loads the model in each worker.
set -e
if [ -z "${TALKLIKE_MODEL:-}" ] && [ -z "${MODEL_URL:-}" ]; then
  if [ -f "$(dirname "$0")/model.pt" ]; then
    TALKLIKE_MODEL="$(dirname "$0")/model.pt"
    export TALKLIKE_MODEL
  else
    echo "no model: bake one in as deploy/model.pt, or set MODEL_URL (and MODEL_SHA256) or TALKLIKE_MODEL" >&2
    exit 2
  fi
fi
exec gunicorn 'bot.app:create_app()' -c python:bot.app.gunicorn_conf
