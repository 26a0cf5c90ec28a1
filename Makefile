# speech_ssl — two commands on a fresh machine: `make demo`, `make test`.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# CPU wheel by default; e.g. TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu126" for CUDA.
TORCH_SPEC ?= torch==2.13.0
EXTRAS ?= dev,lm,synth,plot
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
PYTEST_ARGS ?=

.PHONY: install test test-all lint demo demo-quick bench bench-real clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(TORCH_SPEC)
	$(BIN)/python -m pip install -q -e ".[$(EXTRAS)]"
	rm -f $(VENV)/.installed-*
	touch $@

test: install
	OMP_NUM_THREADS=2 $(BIN)/python -m pytest -q -m "not slow" --durations=12 $(PYTEST_ARGS)

test-all: install
	OMP_NUM_THREADS=2 $(BIN)/python -m pytest -q $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check speech_ssl data_prep tests bench

demo: install
	$(BIN)/speech-ssl demo --out demo_out

demo-quick: install
	$(BIN)/speech-ssl demo --quick --out demo_out_quick

# Benchmarks are not tests: each prints its figures with the thread count; see README "Benchmarks".
bench: install
	OMP_NUM_THREADS=1 $(BIN)/python bench/bench_data_loading.py --minutes 10 --workers 0 1
	OMP_NUM_THREADS=1 $(BIN)/python bench/bench_synth.py --minutes 2 --workers 1
	$(BIN)/python bench/bench_pretrain.py --presets tiny,base --threads 2

# The real-speech check (not a test; fetches 5 LibriVox clips from pocketsphinx's sdist with pip once):
# a fine-tuned English letter checkpoint of ours vs pocketsphinx on the same clips.
CHECKPOINT ?= exp/synth/finetune/en-10m-pretrained/final
bench-real: install
	$(BIN)/python -m pip install -q pocketsphinx==5.1.1
	OMP_NUM_THREADS=2 $(BIN)/python bench/bench_real_speech.py --checkpoint $(CHECKPOINT)

clean:
	rm -rf $(VENV) .pytest_cache
