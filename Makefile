# Two commands on a fresh machine: `make test` and `make report`.
# Both create .venv when it is missing and install the pinned dependencies.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# One BLAS/OpenMP thread per process: pytest-xdist runs one worker per core.
export OMP_NUM_THREADS ?= 1
export MKL_NUM_THREADS ?= 1

.PHONY: test report fuzz lint bench clean chromium mutate mutate-nightly

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]'
	touch $@

# The browser test drives Debian's Chromium (Playwright's own browser download is not used).
chromium:
	@command -v chromium >/dev/null || { apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

test: $(STAMP) chromium
	HYPOTHESIS_PROFILE=ci $(BIN)/python -m pytest -n 2 -p no:cacheprovider

report: $(STAMP)
	$(BIN)/backprop-harness report

fuzz: $(STAMP)
	HYPOTHESIS_PROFILE=nightly $(BIN)/python -m pytest -n 2 tests -m fuzz

lint: $(STAMP)
	$(BIN)/ruff check manual reference reports tests benchmarks
	$(BIN)/mypy

# Mutation testing (mutation/README.md): mutmut, killed by the conformance test files named in
# [tool.mutmut], two children at most. MUTATE takes paths or mutmut name globs, e.g.
# `make mutate MUTATE=manual/ops/softmax.py`; the default is the core (manual/ops/,
# manual/layers/core.py, manual/network.py, reference/core/compare.py). Results: mutation/results.json.
MUTATE ?=
MUTATE_CHILDREN ?= 2
mutate: $(STAMP)
	$(BIN)/python mutation/mutate.py --max-children $(MUTATE_CHILDREN) $(MUTATE)

# Every mutant of manual/ and reference/core/compare.py, from scratch (hours on two cores: nightly).
mutate-nightly: $(STAMP)
	rm -rf mutants
	$(BIN)/python mutation/mutate.py --max-children $(MUTATE_CHILDREN) manual/ reference/core/compare.py

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_step.py

clean:
	rm -rf $(VENV) out .pytest_cache .hypothesis mutants
