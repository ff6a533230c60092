# dsm-lab: `make lab` opens the workbench, `make test` runs the suite. Both set up first.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
# Speech engines of the corpus: espeak-ng, festival with three English voices, FreeTTS (the held-out engine).
APT_PACKAGES := espeak-ng libespeak-ng1 festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts freetts \
	libportaudio2 pulseaudio pulseaudio-utils chromium
STAMP := $(VENV)/.installed

.PHONY: setup lab test lint bench clean-venv corpus model voices sweep

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

# The embedded model, from nothing, with one command (`make model`; about 150 minutes on 2 CPU cores), in two
# stages. Training engines espeak-ng, festival, Piper, with the voices en+f3 and festival:ked held out; FreeTTS
# is held out entirely; flite is kept for acceptance and never used here.
# Stage 1 (95 min) starts while its corpus is still being written and picks up new items every 5 minutes; the
# shuffle corpus of stage 2 is written during stage 1. Stage 2 (55 min) continues from stage 1's model on both
# folders, with more random word orders (the sound, not the grammar, must carry the transcript).
# Test sets: `make corpus` (other seeds; every test item sharing a sentence with training is dropped when
# measured, bench/voices.py).
ENGINES := espeak,festival,piper
HELD_OUT := --exclude-voice en+f3 --exclude-voice festival:ked
SYNTH := $(VENV)/bin/dsm-lab synth --engines $(ENGINES) $(HELD_OUT) --workers 2
TRAIN_CORPUS := $(SYNTH) --n 10000 --seed 1 --out corpus/train
SHUFFLE_CORPUS := $(SYNTH) --n 3000 --seed 6 --out corpus/train-shuffle --sentences shuffle
# Two torch threads for the model step (one while the synthesiser shares the cores: `dsm-lab train` checks the
# load average at every reload); the linear layers multiply in bfloat16 where the CPU does so natively
# (`--precision auto`; bench/train_throughput.py: 1.6x the steps).
TRAIN_THREADS ?= 2
TRAIN := NO_TORCH_COMPILE=1 $(VENV)/bin/dsm-lab train --delay-frames 6 --threads $(TRAIN_THREADS)
STAGE1_MINUTES ?= 95
STAGE2_MINUTES ?= 55
# Where the stages run and where the model lands (a trial run: `make model RUN1=runs/a RUN2=runs/b MODEL_OUT=runs/c`).
RUN1 ?= runs/dsm-tiny-en
RUN2 ?= runs/dsm-tiny-en-2
MODEL_OUT ?= lab/data/models/dsm-tiny-en
corpus/train/.done: | setup
	$(TRAIN_CORPUS)
	touch $@
corpus/train-shuffle/.done: | setup
	$(SHUFFLE_CORPUS)
	touch $@
corpus/tests/.done: | setup
	$(VENV)/bin/dsm-lab synth --n 300 --seed 2 --out corpus/val --engines $(ENGINES) $(HELD_OUT)
	$(VENV)/bin/dsm-lab synth --n 400 --seed 3 --out corpus/test-grammar --engines $(ENGINES) $(HELD_OUT) \
	    --sentences grammar
	$(VENV)/bin/dsm-lab synth --n 300 --seed 4 --out corpus/test-shuffle-heldout-voices --voice en+f3 \
	    --voice festival:ked --sentences shuffle
	$(VENV)/bin/dsm-lab synth --n 300 --seed 5 --out corpus/test-heldout-engine --engines freetts --sentences grammar
	$(VENV)/bin/dsm-lab synth --n 200 --seed 7 --out corpus/test-shuffle --engines $(ENGINES) $(HELD_OUT) \
	    --sentences shuffle
	mkdir -p corpus/tests && touch $@
corpus: corpus/train/.done corpus/train-shuffle/.done corpus/tests/.done

# Each stage checkpoints every 5 minutes; run `make model` again to resume an interrupted one.
model: | setup
	mkdir -p corpus/train $(RUN1) $(RUN2)
	( [ -f corpus/train/.done ] || ( $(TRAIN_CORPUS) > runs/synth-train.log 2>&1 && touch corpus/train/.done ) ; \
	  [ -f corpus/train-shuffle/.done ] || ( $(SHUFFLE_CORPUS) > runs/synth-shuffle.log 2>&1 && \
	    touch corpus/train-shuffle/.done ) ) & \
	[ -f corpus/train/.done ] || sleep 120; [ -f $(RUN1)/.done ] || ( $(TRAIN) --corpus corpus/train --out $(RUN1) \
	    --minutes $(STAGE1_MINUTES) --seed 0 --reload-every-s 300 \
	    $$( [ -f $(RUN1)/train_state.json ] && echo --resume ) && touch $(RUN1)/.done ); wait
	$(TRAIN) --corpus corpus/train --corpus corpus/train-shuffle --out $(RUN2) \
	    --init-from $(RUN1)/model --minutes $(STAGE2_MINUTES) --seed 1 --lr 1e-3 --reload-every-s 300 \
	    $$( [ -f $(RUN2)/train_state.json ] && echo --resume )
	$(VENV)/bin/dsm-lab export $(RUN2)/model $(MODEL_OUT)

# The delay sweep (notebook 01, bench/delay_sweep.py): one more stage from the shipped model, on the same
# corpus, at D = 2, 6 and 12 frames; only D differs. A fixed step count, not minutes, so that the three get
# the same training whatever else shares the cores. Each checkpoints; run `make sweep` again to resume.
SWEEP_FROM ?= dsm-tiny-en
SWEEP_STEPS ?= 1000
sweep: | setup
	for D in 2 6 12; do \
	  [ -f runs/sweep-d$$D/.done ] || { NO_TORCH_COMPILE=1 $(VENV)/bin/dsm-lab train --corpus corpus/train \
	    --corpus corpus/train-shuffle --out runs/sweep-d$$D --init-from $(SWEEP_FROM) --delay-frames $$D \
	    --change-delay --max-steps $(SWEEP_STEPS) --minutes 120 --seed 2 --lr 5e-4 --threads $(TRAIN_THREADS) \
	    --name dsm-tiny-en-d$$D $$( [ -f runs/sweep-d$$D/train_state.json ] && echo --resume ) && \
	  touch runs/sweep-d$$D/.done; } || exit 1; \
	  $(VENV)/bin/dsm-lab export runs/sweep-d$$D/model lab/data/models/dsm-tiny-en-d$$D || exit 1; \
	done

voices: corpus
	NO_TORCH_COMPILE=1 $(PY) bench/voices.py
