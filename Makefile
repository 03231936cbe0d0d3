# The two commands of the README.  Each creates .venv on first use, so each works alone on a
# fresh clone; `make test` is what CI runs (.ci/run).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: lab test bench clean mutate assert-check

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

# jupyter_config/ (in the repo, on the config search path) turns off announcements, news and update checks
lab: $(STAMP)
	JUPYTER_CONFIG_PATH="$(CURDIR)/jupyter_config$${JUPYTER_CONFIG_PATH:+:$$JUPYTER_CONFIG_PATH}" $(PY) -m xdplab lab

test: $(STAMP)
	$(PY) -m pytest -q

bench: $(STAMP)
	$(PY) benchmarks/bench_vm.py
	$(PY) benchmarks/bench_viz.py
	$(PY) benchmarks/bench_batch.py
	$(PY) benchmarks/bench_verifier.py

# Sampled mutation testing (tools/mutate.py, cosmic-ray): MUTATE_SAMPLE mutation sites per module,
# one worker, nice'd; writes benchmarks/results/mutation.json.  MUTATE_ARGS e.g. --modules 'xdplab/bpf/*'.
MUTATE_SAMPLE ?= 10
MUTATE_ARGS ?=
mutate: $(STAMP)
	nice -n 10 $(PY) tools/mutate.py --sample $(MUTATE_SAMPLE) $(MUTATE_ARGS)

# Do the kills depend on the tests' assertions?  Re-runs ASSERT_SAMPLE killed mutants of the
# mutation file with the killing test's assertions neutralised (tools/assert_check.py).
ASSERT_SAMPLE ?= 20
assert-check: $(STAMP)
	nice -n 10 $(PY) tools/assert_check.py --sample $(ASSERT_SAMPLE)

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
