# talklike — the two commands a newcomer needs: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
PIP     = $(PY) -m pip
TORCH_PIN ?= torch==2.13.0
# PyPI's torch for Linux is the CUDA build (gigabytes); TORCH_INDEX=https://download.pytorch.org/whl/cpu takes
# the CPU build from PyTorch's own index. (This project's build machines carry the CPU wheel locally.)
TORCH_INDEX ?=
DEMO_DIR ?= demo

.PHONY: install test lint demo clean test-services lock

# Tests run a real redis-server and a real headless Chromium (the console's browser test); install them
# from Debian where missing (their tests skip, saying why, without them).
test-services:
	@command -v redis-server >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get update -qq && apt-get install -y -qq redis-server >/dev/null) || echo "could not install redis-server: its tests will be skipped"; \
	  else echo "redis-server not found (install it, e.g. apt-get install redis-server): its tests will be skipped"; fi; }
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || command -v google-chrome >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get update -qq && apt-get install -y -qq chromium >/dev/null) || echo "could not install chromium: the console's browser test will be skipped"; \
	  else echo "chromium not found (install it, e.g. apt-get install chromium): the console's browser test will be skipped"; fi; }

# The venv is (re)built when pyproject.toml changes. torch is installed first and pinned so pip takes
# the CPU wheel (an unpinned torch pulls a multi-GB CUDA build).
$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)) "$(TORCH_PIN)"
	$(PIP) install -q -e ".[dev]"
	touch $@

install: $(VENV)/.installed

lint: install
	$(VENV)/bin/ruff check .

# requirements.lock: the server's exact packages with their hashes, which Heroku and the Dockerfile install
# (development installs from pyproject.toml, above). Needs PyPI and the CPU torch wheel in WHEELS.
WHEELS ?= /opt/wheels
lock: install
	$(PIP) install -q "pip-tools>=7.4"
	WHEELS=$(WHEELS) COMPILE=$(VENV)/bin/pip-compile sh deploy/lock.sh

test: install lint test-services
	$(VENV)/bin/pytest

TALKLIKE = $(VENV)/bin/talklike

DEMO_MINUTES ?= 4
# The demo ends in the web console; DEMO_UI=chat ends in the terminal chat instead.
DEMO_UI ?= console
DEMO_PORT ?= 8000
PERSONAS = $(PY) -c "import json,sys; print('\n'.join(json.load(sys.stdin)['personas']))"

# The whole path on generated data: exports in the real formats -> corpus -> model -> chat.
demo: install
	@echo "== 1. writing demo exports (a Telegram and a Messenger export of one group chat)"
	$(PY) -m training.demo.generate --out $(DEMO_DIR)/exports
	@echo "== 2. importing them into one corpus"
	$(TALKLIKE) import $(DEMO_DIR)/exports -o $(DEMO_DIR)/corpus.jsonl
	@echo "== 3. training a small model for $(DEMO_MINUTES) minutes (Ctrl-C stops early and keeps a checkpoint)"
	rm -rf $(DEMO_DIR)/run
	$(TALKLIKE) train $(DEMO_DIR)/corpus.jsonl -o $(DEMO_DIR)/run --preset small --max-minutes $(DEMO_MINUTES)
	@echo "== 4. exporting one self-contained model file"
	$(TALKLIKE) export $(DEMO_DIR)/run -o $(DEMO_DIR)/model.pt
	@echo "== 5. measuring the imitation on held-out messages"
	$(TALKLIKE) evaluate $(DEMO_DIR)/model.pt $(DEMO_DIR)/corpus.jsonl
	@echo "== 6. samples for each persona"
	@$(TALKLIKE) info $(DEMO_DIR)/model.pt --json | $(PERSONAS) | while read -r persona; do \
	  echo "-- $$persona"; $(TALKLIKE) sample $(DEMO_DIR)/model.pt --persona "$$persona" -n 3 --seed 1; done
	@echo "== 7. a scripted chat with Ada (one message per line in, one reply per line out)"
	printf 'hi! are you coming tonight?\nwhat should we bring?\n' | $(TALKLIKE) chat $(DEMO_DIR)/model.pt --persona Ada
ifeq ($(DEMO_UI),chat)
	@echo "== 8. chat with a persona (/persona NAME switches, /help lists commands, Ctrl-D leaves)"
	$(TALKLIKE) chat $(DEMO_DIR)/model.pt --persona Ada
else
	@echo "== 8. the web console: open the address below, pick a persona and chat (Ctrl-C stops)"
	$(TALKLIKE) serve $(DEMO_DIR)/model.pt --port $(DEMO_PORT) --store sqlite:///$(DEMO_DIR)/talklike.db
endif

clean:
	rm -rf $(VENV) $(DEMO_DIR) .pytest_cache .ruff_cache
