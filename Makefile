# Two commands for a newcomer: `make run` and `make test`. Everything bootstraps itself.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DROP   ?= ./var/drop
STATE  ?= ./var/state

.PHONY: run test lint format bench reliability clean venv tools

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

## run: start the daemon on ./var/drop with the embedded store (seeds a sample drop on first start)
run: $(STAMP)
	@mkdir -p $(DROP) $(STATE)
	@if [ -z "$$(ls -A $(DROP))" ]; then \
		echo "seeding a sample drop into $(DROP)"; \
		$(BIN)/algoseek-sync generate $(DROP)/generated --secids 20 --days 10; \
	fi
	ALGOSEEK_SYNC_DROP_DIR=$(DROP) ALGOSEEK_SYNC_STATE_DIR=$(STATE) $(BIN)/algoseek-sync run

## tools: system tools the tests use (systemd-analyze verifies the unit files)
tools:
	@command -v systemd-analyze >/dev/null || { \
		echo "installing systemd (for systemd-analyze)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends systemd >/dev/null; }

## test: lint, format check and the whole test suite
test: $(STAMP) tools
	$(BIN)/ruff check daemon tests bench
	$(BIN)/ruff format --check daemon tests bench
	$(BIN)/pytest -q -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check daemon tests bench

format: $(STAMP)
	$(BIN)/ruff format daemon tests bench
	$(BIN)/ruff check --fix daemon tests bench

## bench: benchmarks; writes bench/results.json and bench/results.md
bench: $(STAMP)
	$(BIN)/python bench/run.py

## reliability: the long reliability suite (crash loops, platform outages)
reliability: $(STAMP)
	$(BIN)/pytest -q -m slow

clean:
	rm -rf $(VENV) var .pytest_cache bench/work
