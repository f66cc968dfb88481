# vlaforge: `make run` (embedded end-to-end pipeline) and `make test` set themselves up.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PRESET ?= tiny
SYSTEM_PACKAGES := libosmesa6 chromium
export MUJOCO_GL ?= osmesa
export PYOPENGL_PLATFORM ?= osmesa

.PHONY: setup run test test-e2e bench compile clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -e '.[dev]'
	@touch $(STAMP)

setup: $(STAMP)
	@./scripts/setup-system.sh $(SYSTEM_PACKAGES)

run: setup
	$(VENV)/bin/vlaforge run --preset $(PRESET) $(if $(SET),$(foreach s,$(SET),--set $(s)))

test: setup
	$(PY) -m pytest -q

test-e2e: setup
	$(PY) -m pytest -q -m slow

bench: setup
	$(PY) bench/run_all.py

compile: setup
	$(VENV)/bin/vlaforge compile --out pipelines/compiled

clean:
	rm -rf runs build .cache
