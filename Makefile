# The two commands of the README.  Each creates .venv on first use, so each works alone on a
# fresh clone; `make test` is what CI runs (.ci/run).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: lab test bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

lab: $(STAMP)
	$(PY) -m xdplab lab

test: $(STAMP)
	$(PY) -m pytest -q

bench: $(STAMP)
	$(PY) benchmarks/bench_vm.py
	$(PY) benchmarks/bench_viz.py
	$(PY) benchmarks/bench_batch.py

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
