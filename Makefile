# vlaforge: `make run` (embedded end-to-end pipeline) and `make test` set themselves up.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PRESET ?= tiny
SYSTEM_PACKAGES := libosmesa6 chromium g++
export MUJOCO_GL ?= osmesa
export PYOPENGL_PLATFORM ?= osmesa

.PHONY: setup run ablation test test-e2e bench compile images golden test-containers clean chart test-chart openpi-venv \
	lerobot-fixtures

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -e '.[dev]'
	@touch $(STAMP)

setup: $(STAMP)
	@./scripts/setup-system.sh $(SYSTEM_PACKAGES)

run: setup
	$(VENV)/bin/vlaforge run --preset $(PRESET) $(if $(SET),$(foreach s,$(SET),--set $(s)))

# The pretraining ablation (docs/experiments/metaworld4.md): preset vs random-init VLM vs swapped instructions.
ABLATION_PRESET ?= metaworld4
REPEATS ?= 2
ablation: setup
	$(VENV)/bin/vlaforge ablation --preset $(ABLATION_PRESET) --repeats $(REPEATS) --out runs/ablation-$(ABLATION_PRESET) \
	  --results-doc docs/results/$(ABLATION_PRESET)-ablation $(if $(SET),$(foreach s,$(SET),--set $(s)))

test: setup
	$(PY) -m pytest -q

test-e2e: setup
	$(PY) -m pytest -q -m slow

bench: setup
	$(PY) bench/run_all.py

compile: setup
	$(VENV)/bin/vlaforge compile --out pipelines/compiled

# Stage images <registry>/vlaforge-<family>:<version>. Default: podman from a local Debian base (no registry
# here); on a cluster builder: make images REGISTRY=registry.example.com/ml BUILDER=docker PUSH=1
images: setup
	source scripts/podman-env.sh && $(PY) scripts/build_images.py $(if $(REGISTRY),--registry $(REGISTRY),--local) \
	  $(if $(BUILDER),--builder $(BUILDER)) $(if $(PUSH),--push)

# Regenerate the checked-in compiled pipelines that tests/kube compares against (default registry and profile).
golden: setup
	env -u VLAFORGE_REGISTRY -u VLAFORGE_PROFILE $(VENV)/bin/vlaforge compile --out pipelines/compiled

# The containerised tiny pipeline: podman + kfp.local.DockerRunner + an S3 server on loopback.
test-containers: images
	source scripts/podman-env.sh && $(PY) -m pytest -q -m containers tests/kube

clean:
	rm -rf runs build .cache

# Side environments of packages that cannot share .venv (the tests make the first one themselves):
# openpi's client (numpy < 2) for the openpi serving tests; lerobot-dataset (Python >= 3.12, torch +
# torchvision) to regenerate the committed LeRobot v3.0 test datasets under tests/robotics/data/.
openpi-venv:
	./scripts/make_openpi_venv.sh

lerobot-fixtures:
	./scripts/make_lerobot_fixtures.sh

# Helm chart: compiled pipelines in (VALUES=<file>: compiled with that file's clusterProfile), lint,
# render, package into build/chart/.
chart: setup $(if $(VALUES),,compile)
	@scripts/install-helm-tools.sh >/dev/null
	$(PY) scripts/chart_pipelines.py $(if $(VALUES),--values $(VALUES))
	@mkdir -p build/chart
	.tools/bin/helm lint --strict charts/vlaforge $(if $(VALUES),-f $(VALUES))
	.tools/bin/helm template vlaforge charts/vlaforge $(if $(VALUES),-f $(VALUES)) > build/chart/vlaforge.yaml
	.tools/bin/helm package charts/vlaforge -d build/chart

test-chart: setup
	$(PY) -m pytest -q tests/chart

.PHONY: protos
protos: setup  ## regenerate the LBM Eval gRPC stubs (src/vlaforge/serve/protos) from the .proto
	$(PY) -m vlaforge.serve.protogen
