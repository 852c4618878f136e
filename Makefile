# `make demo` and `make test` set everything up from scratch on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.frugalml-installed
SHARED_DATA := $(abspath ../shared/data)
export FRUGAL_DATA ?= $(if $(wildcard $(SHARED_DATA)),$(SHARED_DATA),)
SOURCES := pyproject.toml setup.py $(wildcard src/frugalml/*/*.c src/frugalml/*/*.h src/frugalml/*/codegen*.py)

.PHONY: install demo test test-slow test-ci-slow check report clean

install: $(STAMP)

$(STAMP): $(SOURCES)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	# the CPU wheel on disk first: a bare torch requirement would pull a multi-GB CUDA build
	$(PY) -m pip install torch==2.13.0
	$(PY) -m pip install -e ".[all,test]"
	# byte-compiled once, as an installed package is: fresh processes then start without compiling
	$(PY) -m compileall -q src/frugalml
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/frugal demo

test: $(STAMP)
	$(PY) -m pytest

test-slow: $(STAMP)
	$(PY) -m pytest -m slow

# every system's checks of its paper's claims at scaled-down sizes, as one web page: report/index.html
report: $(STAMP)
	$(VENV)/bin/frugal reproduce --quick -o report --force

# the long tests CI runs too: full fuzz suites of every file format, cleave's namespace fleet
test-ci-slow: $(STAMP)
	$(PY) -m pytest -m slow -k "fuzz or fleet"

# the habits CI enforces: lint, formatting, types of common/ and every wing's public API
check: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks .ci/typecheck
	$(VENV)/bin/ruff format --check src tests benchmarks .ci/typecheck
	$(PY) .ci/typecheck

clean:
	rm -rf $(VENV) build src/*.egg-info
	find src -name '*.so' -delete
