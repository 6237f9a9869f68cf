# Two entry points for a fresh machine: `make demo` and `make test`.
# Each creates .venv on first use and installs the project into it.
VENV ?= .venv
PY := $(VENV)/bin/python

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

LINTED := engine keypoints faceworld voicedrag

.PHONY: demo test lint
demo: $(VENV)/.installed
	$(VENV)/bin/voicedrag demo

test: $(VENV)/.installed
	$(PY) -m pytest -q

# Settings in pyproject.toml ([tool.ruff], [tool.mypy]).
lint: $(VENV)/.installed
	$(VENV)/bin/ruff check $(LINTED)
	$(VENV)/bin/ruff format --check $(LINTED)
	$(VENV)/bin/mypy $(LINTED)
