# The two commands of the README: `make demo` and `make test`. Both build .venv/ first.
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: demo demo-portal test lint bytecode clean

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev,llm,pdf,ray]'
	touch $(STAMP)

# A package install compiles its modules; an editable one where PYTHONDONTWRITEBYTECODE is set
# never writes them, and every process (a CLI command, a gateway worker, the ingest's indexing
# worker) would compile tokenclub's sources again as it starts (0.2-0.4 s of CPU). Fresh each run.
bytecode: $(STAMP)
	$(BIN)/python -m compileall -q src

demo: bytecode
	bash scripts/demo.sh

demo-portal: bytecode
	bash scripts/demo_portal.sh

lint: $(STAMP)
	$(BIN)/ruff check src tests bench scripts
	$(BIN)/ruff format --check src tests bench scripts
	$(BIN)/mypy

test: lint bytecode
	$(BIN)/pytest

clean:
	rm -rf $(VENV) .tokenclub-demo .tokenclub-portal-demo .mypy_cache .ruff_cache .pytest_cache
