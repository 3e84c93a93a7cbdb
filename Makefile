# Kuroshio: `make demo` runs partner nodes on this machine, `make test` runs the test suite.
# Both bootstrap a local virtual environment in .venv on first use (idempotent, fast afterwards).

PY ?= $(shell for p in python3.13 python3.12 python3.11 python3; do \
	if command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; \
	then echo $$p; break; fi; done)
VENV  := .venv
STAMP := $(VENV)/.installed-test
BENCH := $(VENV)/.installed-bench

.PHONY: demo test lint bench campaign campaign-federation campaign-matcher clean

$(STAMP): pyproject.toml
	@test -n "$(PY)" || { echo "Kuroshio needs Python 3.11 or newer on PATH (python3.11, python3.12, ...): install one, then run make again." >&2; exit 1; }
	@test -x $(VENV)/bin/python || $(PY) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
	$(VENV)/bin/python -m pip install -q --disable-pip-version-check -e '.[test]'
	@touch $(STAMP)

$(BENCH): $(STAMP)
	$(VENV)/bin/python -m pip install -q --disable-pip-version-check -e '.[test,bench]'
	@touch $(BENCH)

demo: $(STAMP)
	$(VENV)/bin/kuroshio demo

test: $(STAMP)
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/python -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests bench

bench: $(BENCH)
	$(VENV)/bin/python bench/validate_vs_oasis.py
	$(VENV)/bin/python bench/taxii_vs_medallion.py
	$(VENV)/bin/python bench/releasability.py
	$(VENV)/bin/python bench/federation.py
	$(VENV)/bin/python bench/correlate.py
	$(VENV)/bin/python bench/observe.py
	$(VENV)/bin/python bench/ais.py

# the long releasability campaign: 100,000 generated populations against the reference model (~40 min)
campaign: $(STAMP)
	KUROSHIO_PROPERTY_CASES=100000 $(VENV)/bin/python -m pytest -q -p no:cacheprovider tests/markings/test_property.py

# the pattern-matching differential campaign: 100,000 generated cases against stix2-matcher, then as many
# of the index against full evaluation (one at a time, in batches, the batched affix probe)
campaign-matcher: $(STAMP)
	KUROSHIO_MATCHER_CASES=100000 $(VENV)/bin/python -m pytest -q -p no:cacheprovider tests/correlate/test_evaluate.py -k stix2_matcher
	KUROSHIO_MATCHER_CASES=100000 $(VENV)/bin/python -m pytest -q -p no:cacheprovider tests/correlate/test_index.py \
		-k "agrees_with_evaluation or one_at_a_time or affixes or cidr_blocks"

# the federation fault campaign: 100 kill -9 during pull and 100 during push (syncing and serving nodes)
campaign-federation: $(STAMP)
	KUROSHIO_FAULT_KILLS=100 $(VENV)/bin/python -m pytest -q -p no:cacheprovider tests/federation/test_faults.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis src/*.egg-info
