# 导诊助手: two commands from a fresh machine, `make run` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
# A portable llama.cpp build (no -march=native), so the wheel pip caches runs on any x86-64.
export CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DLLAVA_BUILD=OFF
export HF_HUB_OFFLINE := 1
TEXT ?= 孩子发烧三天，咳嗽有痰
DEV  ?= ../shared/eval/dev.jsonl

.PHONY: install system-packages run demo test lint eval bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip wheel setuptools

$(VENV)/.installed: setup.cfg pyproject.toml | $(BIN)/python
	# torch first and pinned: the CPU build; a bare requirement would pull a CUDA build.
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[embeddings,postgres,test]'
	touch $@

install: $(VENV)/.installed

run: install
	$(BIN)/triage run

demo: install
	$(BIN)/triage demo "$(TEXT)"

lint: install
	$(BIN)/ruff check triage tests
	$(BIN)/lint-imports

# Debian's packages for the tests: chromium for the browser tests (no browser download), CJK
# fonts for screenshots, PostgreSQL for the database tests (they also run on SQLite).
system-packages:
	@command -v chromium >/dev/null && fc-list :lang=zh | grep -q . && ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; elif command -v sudo >/dev/null; then SUDO=sudo; else \
	    echo "chromium or PostgreSQL missing and no root: those tests will be skipped"; exit 0; fi; \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq --no-install-recommends chromium fonts-wqy-zenhei postgresql >/dev/null; }

test: lint system-packages
	$(BIN)/python -m pytest

eval: install
	$(BIN)/triage eval --dev $(DEV) --output eval/results.json

bench: install
	$(BIN)/triage bench --output bench/results.json

clean:
	rm -rf $(VENV) instance .pytest_cache
