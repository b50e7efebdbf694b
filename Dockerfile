# talklike: the serving image (CPU). Build: docker build -t talklike .   Run: see the README ("Deploying").
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PORT=8000 \
    TALKLIKE_STORE_URL=sqlite:////app/data/talklike.db

WORKDIR /app

# The CPU build of torch first (the default one from PyPI bundles CUDA: gigabytes the server never uses).
RUN pip install --index-url https://download.pytorch.org/whl/cpu "torch==2.13.0"

COPY pyproject.toml README.md ./
COPY talklike ./talklike
COPY model ./model
COPY training ./training
COPY bot ./bot
RUN pip install .

COPY deploy ./deploy
RUN useradd --create-home --uid 10001 talklike && mkdir -p /app/data && chown talklike /app/data
USER talklike

EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PORT', '8000'), timeout=4)"

CMD ["/app/deploy/start.sh"]
