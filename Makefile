# Every target creates .venv at the repository root on first use and is safe to rerun.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.cdnn-installed

.PHONY: setup demo test vectors bench latency paper clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	# torch first, pinned: a bare `torch` requirement would pull a multi-GB CUDA build.
	$(PY) -m pip install --quiet --disable-pip-version-check torch==2.13.0
	$(PY) -m pip install --quiet --disable-pip-version-check -e ".[torch,dev]"
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(VENV)/bin/cdnn demo

# the linter first (pyflakes, import order, line length: [tool.ruff] in pyproject.toml)
test: setup
	$(PY) -m ruff check .
	$(PY) -m pytest -q -p no:cacheprovider

vectors: setup
	$(PY) spec/vectors/make_vectors.py

bench: setup
	$(PY) benchmarks/bench_huffman.py

# cdnn_runtime against PyTorch and onnxruntime (installs the `bench` extra, torch kept pinned).
latency: setup
	$(PY) -m pip install --quiet --disable-pip-version-check torch==2.13.0 -e ".[torch,dev,bench]"
	$(PY) benchmarks/bench_latency.py

# Deep Compression's tables on Fashion-MNIST, AlexNet/VGG-16 sizes, the init ablation (about
# half an hour on 2 cores), then the ViT and the character-level GPT (one thread each, an hour
# or more each; the ViT took 116 minutes on a shared machine). Needs Debian's dataset-fashion-mnist (see the README).
paper: setup
	$(PY) benchmarks/reproduce.py
	# the ViT on Fashion-MNIST, one thread, about an hour: its section of PAPER.md
	$(PY) benchmarks/paper_vit.py
	# the character-level GPT on the Python standard library, one thread, about 70 minutes
	$(PY) benchmarks/paper_chargpt.py

clean:
	rm -rf $(VENV) build *.egg-info
