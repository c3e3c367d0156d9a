# The README's two commands: `make demo` and `make test`. Each sets up what it
# needs on a fresh machine that has only Python (a .venv here, Debian's Chromium
# for the browser tests when running as root with apt).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PORT   ?= 8888

.PHONY: setup demo test test-matrix lint bench chromium clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test,widgets,bench]'
	@touch $(STAMP)

setup: $(STAMP)

chromium:
	@if [ -x /usr/bin/chromium ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "Installing Debian's chromium for the browser tests"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	else echo "chromium is missing and cannot be installed here: browser tests will skip (they never skip under CI=true)"; fi

demo: setup
	$(BIN)/python -m ttt_magic ask "Explain what a Python list comprehension is" -b mock
	$(BIN)/jupyter lab --ip=127.0.0.1 --port=$(PORT) --no-browser \
		$$( [ "$$(id -u)" = 0 ] && echo --allow-root ) notebooks/01_quickstart.ipynb

test: setup chromium
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

# The suite without the browser tests on the oldest and newest supported Pythons found
# here (3.10 and 3.13, each in its own .venv-pyX.Y); fails if any run fails.
test-matrix:
	bash tests/matrix/run.sh

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: setup
	@for script in benchmarks/bench_*.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done
	$(BIN)/python benchmarks/collect.py

clean:
	rm -rf $(VENV) .venv-py3.* .pytest_cache .ruff_cache .hypothesis test-artifacts
