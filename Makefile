# anomaly_perception: one-command setup, tests, demo and benchmarks.
#
#   make demo    set up, then run the main job on the embedded default data
#   make test    set up, then run the test suite
#   make bench   set up, then run the benchmarks (numbers -> out/bench/*.json)
#   make lint    flake8 + pydocstyle with the ament configuration
#
# `setup` creates .venv and installs the package (editable) with its test
# extras; it is skipped while setup.py, setup.cfg and requirements.txt are
# unchanged.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.setup-stamp
SOURCES := anomaly_perception test benchmarks launch setup.py

.PHONY: setup test demo bench lint clean

setup: $(STAMP)

$(STAMP): setup.py setup.cfg requirements.txt package.xml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip setuptools wheel
	$(PY) -m pip install --quiet -e '.[test]'
	@touch $@

test: setup
	$(PY) -m pytest

demo: setup
	$(VENV)/bin/anomaly-perception demo --out out/demo

bench: setup
	$(PY) benchmarks/bench_io.py
	$(PY) benchmarks/bench_metrics.py
	$(PY) benchmarks/bench_synth.py
	$(PY) benchmarks/bench_frame.py
	$(PY) benchmarks/bench_replay.py

lint: setup
	$(PY) -m flake8 $(SOURCES)
	$(PY) -m pydocstyle $(SOURCES)

clean:
	rm -rf build *.egg-info .pytest_cache out
