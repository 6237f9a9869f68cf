# Two entry points for a fresh machine: `make demo` and `make test`.
# Each creates .venv on first use and installs the project into it.
VENV ?= .venv
PY := $(VENV)/bin/python

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

.PHONY: demo test
demo: $(VENV)/.installed
	$(VENV)/bin/voicedrag demo

test: $(VENV)/.installed
	$(PY) -m pytest -q
