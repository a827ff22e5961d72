# The two commands of the README: `make demo` and `make test`. Both build .venv/ first.
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: demo demo-portal test lint clean

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev,llm,pdf,ray]'
	touch $(STAMP)

demo: $(STAMP)
	bash scripts/demo.sh

demo-portal: $(STAMP)
	bash scripts/demo_portal.sh

lint: $(STAMP)
	$(BIN)/ruff check src tests bench scripts
	$(BIN)/ruff format --check src tests bench scripts
	$(BIN)/mypy

test: lint
	$(BIN)/pytest

clean:
	rm -rf $(VENV) .tokenclub-demo .tokenclub-portal-demo .mypy_cache .ruff_cache .pytest_cache
