# Two commands for a newcomer: `make run` and `make test`. Everything bootstraps itself.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DROP   ?= ./var/drop
STATE  ?= ./var/state
# The platform backend is tested on the lowest and the highest supported SDK (pyproject.toml)
SDK_LOW  := 3.19.17
SDK_HIGH := 3.21.0
LOW      := .venv-sdk-$(SDK_LOW)

.PHONY: run test lint format bench reliability clean venv tools container-tools wheelhouse

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]' 'mainsequence==$(SDK_HIGH)'
	touch $(STAMP)

## a second environment with the lowest supported SDK, for the platform backend's tests
$(LOW)/.installed: pyproject.toml $(STAMP)
	$(PYTHON) -m venv $(LOW)
	$(LOW)/bin/pip install --quiet --upgrade pip
	$(BIN)/python -c 'import tomllib; d = tomllib.load(open("pyproject.toml", "rb"))["project"]; \
		print("\n".join([x for x in d["dependencies"] if not x.startswith("mainsequence")] \
		+ d["optional-dependencies"]["dev"]))' > $(LOW)/requirements.txt
	$(LOW)/bin/pip install --quiet -r $(LOW)/requirements.txt 'mainsequence==$(SDK_LOW)'
	touch $@

## run: start the daemon on ./var/drop with the embedded store (seeds a sample drop on first start)
run: $(STAMP)
	@mkdir -p $(DROP) $(STATE)
	@if [ -z "$$(ls -A $(DROP))" ]; then \
		echo "seeding a sample drop into $(DROP)"; \
		$(BIN)/algoseek-sync generate $(DROP)/generated --secids 20 --days 10; \
	fi
	ALGOSEEK_SYNC_DROP_DIR=$(DROP) ALGOSEEK_SYNC_STATE_DIR=$(STATE) $(BIN)/algoseek-sync run

## tools: system tools the tests use (systemd-analyze verifies the unit files; headless chromium
## opens the HTML report in tests/test_report.py)
tools:
	@command -v systemd-analyze >/dev/null || { \
		echo "installing systemd (for systemd-analyze)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends systemd >/dev/null; }
	@command -v chromium >/dev/null || { \
		echo "installing chromium (for the HTML report test)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null; }

## container-tools: podman builds and starts the image in tests/test_container.py; debootstrap
## makes its base image when no image registry is reachable
container-tools:
	@command -v podman >/dev/null && command -v debootstrap >/dev/null || { \
		echo "installing podman and debootstrap (for the container test)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends podman debootstrap >/dev/null; }

## wheelhouse: wheels of every dependency for the image's Python into $(WHEELS), for offline
## image builds (the Dockerfile installs from wheels/ with --no-index when it holds wheels)
WHEELS       ?= wheels
WHEEL_PYTHON ?= 3.11
WHEEL_ARCH   ?= x86_64
WHEEL_GLIBC  ?= 36
wheelhouse: $(STAMP)
	@mkdir -p $(WHEELS)
	@rm -f $(WHEELS)/*.whl
	@$(BIN)/python -c 'import tomllib; p = tomllib.load(open("pyproject.toml", "rb")); \
		print("\n".join(p["project"]["dependencies"] + p["build-system"]["requires"] + ["wheel"]))' \
		> $(WHEELS)/requirements.txt
	@echo "downloading wheels for CPython $(WHEEL_PYTHON), manylinux (glibc <= 2.$(WHEEL_GLIBC)) $(WHEEL_ARCH) into $(WHEELS)"
	@$(BIN)/pip download --quiet --disable-pip-version-check --only-binary=:all: \
		--python-version $(WHEEL_PYTHON) --implementation cp --abi cp$(subst .,,$(WHEEL_PYTHON)) \
		$(foreach v,$(shell seq $(WHEEL_GLIBC) -1 5),--platform manylinux_2_$(v)_$(WHEEL_ARCH)) \
		--platform manylinux2014_$(WHEEL_ARCH) --dest $(WHEELS) --requirement $(WHEELS)/requirements.txt
	@echo "$$(ls $(WHEELS)/*.whl | wc -l) wheels in $(WHEELS)"

## test: lint, format check, the whole test suite (SDK $(SDK_HIGH)), the platform backend's tests on SDK $(SDK_LOW)
test: $(STAMP) $(LOW)/.installed tools container-tools
	$(BIN)/ruff check daemon tests bench
	$(BIN)/ruff format --check daemon tests bench
	$(BIN)/pytest -q -m "not slow"
	PYTHONPATH=daemon $(LOW)/bin/python -m pytest -q -p no:cacheprovider -m "not slow" tests/test_mainsequence_backend.py

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
	rm -rf $(VENV) $(LOW) var .pytest_cache bench/work
