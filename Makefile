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
# The locks: exact versions (pip constraints) of everything the two environments install, one per
# SDK (each SDK may need other versions of what it shares with us), and pip with the build backend.
# `make lock` rewrites them from pyproject.toml's ranges.
CONSTRAINTS ?= constraints
LOCK_HIGH   := $(CONSTRAINTS)/sdk-$(SDK_HIGH).txt
LOCK_LOW    := $(CONSTRAINTS)/sdk-$(SDK_LOW).txt
LOCK_BUILD  := $(CONSTRAINTS)/build.txt
# The browser tests/test_report.py opens: the test and .ci/preflight read this variable and fall
# back to the same lookup, so the three never disagree. Re-read per command (after `make tools`).
export CHROMIUM ?= $(shell command -v chromium 2>/dev/null)
# pyproject.toml's dependencies but the SDK, and the dev tools: the low environment's requirements
# (its SDK is named beside them; the project itself runs from daemon/ on PYTHONPATH)
REQUIREMENTS_BUT_SDK = $(PYTHON) -c 'import tomllib; \
	d = tomllib.load(open("pyproject.toml", "rb"))["project"]; \
	print("\n".join([x for x in d["dependencies"] if not x.startswith("mainsequence")] \
	+ d["optional-dependencies"]["dev"]))'
# pyproject.toml's build requirements (setuptools), for the lock of the build backend
BUILD_REQUIRES = $(PYTHON) -c 'import tomllib; \
	print(*tomllib.load(open("pyproject.toml", "rb"))["build-system"]["requires"])'
# pytest, and one line saying so when it ran no test (exit 5): an empty run fails loudly
NO_TESTS = || { code=$$?; [ $$code -ne 5 ] || echo "make test: pytest collected no tests" >&2; exit $$code; }

.PHONY: run test test-random check lint format bench reliability clean venv lock tools container-tools \
	wheelhouse
# `make test`'s steps run in order (tools, preflight, environments, tests), even under -j
.NOTPARALLEL:

venv: $(STAMP)

## pip at its locked version first: it alone knows --build-constraint (the project's setuptools)
$(STAMP): pyproject.toml $(LOCK_HIGH) $(LOCK_BUILD)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --constraint $(LOCK_BUILD) --upgrade pip
	$(BIN)/pip install --quiet --constraint $(LOCK_HIGH) --build-constraint $(LOCK_BUILD) \
		-e '.[dev]' 'mainsequence==$(SDK_HIGH)'
	touch $(STAMP)

## a second environment with the lowest supported SDK, for the platform backend's tests
$(LOW)/.installed: pyproject.toml $(LOCK_LOW) $(LOCK_BUILD)
	$(PYTHON) -m venv $(LOW)
	$(LOW)/bin/pip install --quiet --constraint $(LOCK_BUILD) --upgrade pip
	$(REQUIREMENTS_BUT_SDK) > $(LOW)/requirements.txt
	$(LOW)/bin/pip install --quiet --constraint $(LOCK_LOW) -r $(LOW)/requirements.txt 'mainsequence==$(SDK_LOW)'
	touch $@

## lock: rewrite the locks from pyproject.toml's ranges: both environments built afresh in
## $(LOCK_TMP) without constraints, then their `pip freeze` (the project left out). Review the
## diff and run `make test`. `make lock CONSTRAINTS=DIR` writes the new locks to DIR instead.
LOCK_TMP  ?= /tmp/algoseek-sync-lock
LOCK_NOTE  = \# Written by `make lock` ($(1)) from the ranges in pyproject.toml; do not edit by hand.
lock:
	rm -rf $(LOCK_TMP)
	$(PYTHON) -m venv $(LOCK_TMP)/high
	$(LOCK_TMP)/high/bin/pip install --quiet --upgrade pip wheel $$($(BUILD_REQUIRES))
	$(LOCK_TMP)/high/bin/pip install --quiet -e '.[dev]' 'mainsequence==$(SDK_HIGH)'
	$(PYTHON) -m venv $(LOCK_TMP)/low
	$(LOCK_TMP)/low/bin/pip install --quiet --upgrade pip
	$(REQUIREMENTS_BUT_SDK) > $(LOCK_TMP)/low/requirements.txt
	$(LOCK_TMP)/low/bin/pip install --quiet -r $(LOCK_TMP)/low/requirements.txt 'mainsequence==$(SDK_LOW)'
	$(LOCK_TMP)/high/bin/pip check
	$(LOCK_TMP)/low/bin/pip check
	mkdir -p $(CONSTRAINTS)
	{ echo '$(call LOCK_NOTE,pip and the build backend)'; \
		$(LOCK_TMP)/high/bin/pip freeze --all | grep -E '^(pip|setuptools|wheel)=='; } > $(LOCK_BUILD)
	{ echo '$(call LOCK_NOTE,.venv: SDK $(SDK_HIGH) and the dev tools)'; \
		$(LOCK_TMP)/high/bin/pip freeze --exclude algoseek-sync; } > $(LOCK_HIGH)
	{ echo '$(call LOCK_NOTE,$(LOW): SDK $(SDK_LOW) and the dev tools)'; \
		$(LOCK_TMP)/low/bin/pip freeze; } > $(LOCK_LOW)
	rm -rf $(LOCK_TMP)
	@echo "locks written to $(CONSTRAINTS)/"

## run: start the daemon on ./var/drop with the embedded store (seeds a sample drop on first start)
run: $(STAMP)
	@mkdir -p $(DROP) $(STATE)
	@if [ -z "$$(ls -A $(DROP))" ]; then \
		echo "seeding a sample drop into $(DROP)"; \
		$(BIN)/algoseek-sync generate $(DROP)/generated --secids 20 --days 10; \
	fi
	ALGOSEEK_SYNC_DROP_DIR=$(DROP) ALGOSEEK_SYNC_STATE_DIR=$(STATE) $(BIN)/algoseek-sync run

## tools: system tools the tests use (systemd-analyze verifies the unit files; headless chromium
## opens the HTML report in tests/test_report.py). apt-get waits for another's dpkg lock.
APT         = apt-get -qq -o DPkg::Lock::Timeout=600
APT_INSTALL = $(APT) update && DEBIAN_FRONTEND=noninteractive $(APT) install -y --no-install-recommends
tools:
	@command -v systemd-analyze >/dev/null || { \
		echo "installing systemd (for systemd-analyze)"; $(APT_INSTALL) systemd >/dev/null; }
	@test -n "$(CHROMIUM)" || { \
		echo "installing chromium (for the HTML report test)"; $(APT_INSTALL) chromium >/dev/null; }

## check: the Debian tools the tests use, installed where apt-get can, then .ci/preflight names in
## one line what `make test` still lacks (Python >= 3.11 with venv, root's rights to mount a tmpfs
## and drop capabilities, systemd-analyze, chromium, podman, debootstrap)
check:
	-@$(MAKE) --no-print-directory --keep-going tools container-tools
	@PYTHON='$(PYTHON)' bash .ci/preflight

## container-tools: podman builds and starts the image in tests/test_container.py; debootstrap
## makes its base image (with tini) when no image registry is reachable; unshare (util-linux,
## always there) runs that build without network
container-tools:
	@command -v podman >/dev/null && command -v debootstrap >/dev/null || { \
		echo "installing podman and debootstrap (for the container test)"; $(APT_INSTALL) podman debootstrap >/dev/null; }

## wheelhouse: wheels of every dependency for the image's Python into $(WHEELS), for offline
## image builds (the Dockerfile installs from wheels/ with --no-index when it holds wheels), at the
## locked versions of SDK $(SDK_HIGH)'s environment (the image has no dev tools)
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
		--platform manylinux2014_$(WHEEL_ARCH) --dest $(WHEELS) --requirement $(WHEELS)/requirements.txt \
		--constraint $(LOCK_HIGH) --constraint $(LOCK_BUILD)
	@echo "$$(ls $(WHEELS)/*.whl | wc -l) wheels in $(WHEELS)"

## test: tools and preflight (check), lint, format check, the whole test suite (SDK $(SDK_HIGH)) in
## file order, the platform backend's tests on SDK $(SDK_LOW)
test: check $(STAMP) $(LOW)/.installed
	$(BIN)/ruff check daemon tests bench
	$(BIN)/ruff format --check daemon tests bench
	$(BIN)/pytest -q -p no:randomly -m "not slow" $(NO_TESTS)
	PYTHONPATH=daemon $(LOW)/bin/python -m pytest -q -p no:cacheprovider -p no:randomly -m "not slow" \
		tests/test_mainsequence_backend.py $(NO_TESTS)

## test-random: the same suite once in a random order (pytest-randomly; without -q its header shows
## the seed); `make test-random SEED=N` runs order N again
test-random: check $(STAMP)
	$(BIN)/pytest -p randomly -m "not slow" $(if $(SEED),--randomly-seed=$(SEED)) $(NO_TESTS)

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
	$(BIN)/pytest -q -p no:randomly -m slow $(NO_TESTS)

clean:
	rm -rf $(VENV) $(LOW) var .pytest_cache bench/work
