# talklike: the serving image (CPU). Build: docker build -t talklike .   Run: see the README ("Deploying").
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PORT=8000 \
    TALKLIKE_STORE_URL=sqlite:////app/data/talklike.db

WORKDIR /app

# Every package the server needs, exact and checked against its sha256 (requirements.lock, `make lock`). torch is
# the CPU build by direct URL from PyTorch's own index (PyPI's default bundles CUDA: gigabytes never used here).
COPY requirements.lock ./
RUN pip install --require-hashes --no-deps -r requirements.lock

COPY pyproject.toml README.md ./
COPY talklike ./talklike
COPY model ./model
COPY training ./training
COPY bot ./bot
# This package on top, built with the locked setuptools: nothing unpinned is fetched.
RUN pip install --no-deps --no-build-isolation .

COPY deploy ./deploy
RUN useradd --create-home --uid 10001 talklike && mkdir -p /app/data && chown talklike /app/data
USER talklike

EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PORT', '8000'), timeout=4)"

CMD ["/app/deploy/start.sh"]
