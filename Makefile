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

.PHONY: venv test book book-smoke clean help bench bench-deps lab

help:
	@echo "make book   - set up .venv, execute every notebook at SCALE=$(SCALE) (smoke|mini|paper) and build the book"
	@echo "make test   - set up .venv, run the smoke-scale book build and the test suite"
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

test: book-smoke
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
