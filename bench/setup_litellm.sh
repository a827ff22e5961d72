#!/usr/bin/env bash
# LiteLLM's proxy, for the gateway benchmark's comparison row, in its own virtual environment.
#
# Kept apart from the project's .venv on purpose: litellm[proxy] pins its own FastAPI, uvicorn,
# pydantic and openai versions, which must not shift tokenclub's. Nothing in pyproject.toml
# refers to it. The folder marks itself ignored (a .gitignore holding "*"), as Python 3.13's
# venv module does, so it never shows up in `git status`.
#
#     bash bench/setup_litellm.sh            # idempotent; reuses an existing environment
#     PYTHON=python3.11 bash bench/setup_litellm.sh
set -euo pipefail
# LiteLLM fetches its model price map from the internet at import unless told to use its bundled copy.
export LITELLM_LOCAL_MODEL_COST_MAP=True

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$here/.venv-litellm"
version="1.108.7"
python="${PYTHON:-python3}"

if [[ ! -x "$venv/bin/python" ]]; then
    "$python" -m venv "$venv"
fi
printf '*\n' >"$venv/.gitignore"

if "$venv/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('litellm') != '$version')" 2>/dev/null \
    && "$venv/bin/python" -c "import litellm.proxy.proxy_server" 2>/dev/null; then
    echo "litellm $version already installed in $venv"
    exit 0
fi

"$venv/bin/python" -m pip install --quiet --upgrade pip
"$venv/bin/python" -m pip install --quiet "litellm[proxy]==$version"
"$venv/bin/python" -c "import litellm.proxy.proxy_server" >/dev/null
echo "litellm $version installed in $venv ($("$venv/bin/litellm" --version 2>/dev/null | tail -n 1 || true))"
