# dsm-lab: `make lab` opens the workbench, `make test` runs the suite. Both set up first.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
# Speech engines of the corpus: espeak-ng, festival with three English voices, FreeTTS (the held-out engine).
APT_PACKAGES := espeak-ng libespeak-ng1 festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts freetts \
	libportaudio2 pulseaudio pulseaudio-utils chromium
STAMP := $(VENV)/.installed

.PHONY: setup lab test lint bench clean-venv

setup: system-packages $(STAMP)

# Debian packages, installed only where missing (quick when all are present).
system-packages:
	@missing=""; for p in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=""; [ "$$(id -u)" -ne 0 ] && SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi

# torch first and pinned: an unpinned torch would pull a multi-GB CUDA build.
# moshi (Kyutai's reference) goes in without its dependencies; the tests use it for parity only.
$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e ".[dev]"
	$(PIP) install -q --no-deps moshi==0.2.13
	touch $(STAMP)

# The notebooks in place (lab/notebooks, shipped in the package): edits here are edits to the course.
# JupyterLab refuses to run as root unless told; containers and CI machines often are root.
lab: setup
	$(VENV)/bin/jupyter lab lab/notebooks/ $$( [ "$$(id -u)" -eq 0 ] && echo --allow-root )

test: setup
	$(VENV)/bin/ruff check lab tests bench
	$(PY) bench/report.py --check
	NO_TORCH_COMPILE=1 OMP_NUM_THREADS=1 $(VENV)/bin/pytest -q --durations=15

bench: setup
	$(VENV)/bin/dsm-lab bench

clean-venv:
	rm -rf $(VENV)
