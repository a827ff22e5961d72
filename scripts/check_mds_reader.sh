#!/usr/bin/env bash
# Read the export tests' MDS shards with mosaicml-streaming's own MDSReader.
#
# mosaicml-streaming cannot join the project's environment: it pins numpy<2.2 and requires
# torchvision and transformers (for its dataset side; PyPI's torchvision does not load beside
# the CPU torch the project tests with). Its readers need none of that, so it is installed
# here without dependencies into a scratch folder, beside only the compression modules its
# readers import, and the one test that uses it runs with that folder on the path.
#
#     bash scripts/check_mds_reader.sh            # reuses the folder if present
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
target="${MDS_READER_DIR:-${TMPDIR:-/tmp}/tokenclub-mds-reader}"
venv="${VENV:-.venv}"
if [[ ! -d "$target/streaming" ]]; then
    "$venv/bin/python" -m pip install -q --no-deps --target "$target" \
        "mosaicml-streaming==0.13.0" "brotli>=1.1" "python-snappy>=0.7" "cramjam>=2.8" "zstd>=1.5"
fi
PYTHONPATH="${PYTHONPATH:+$PYTHONPATH:}$target" "$venv/bin/pytest" tests/export/test_run.py -q -rs \
    -k "mosaicml_streaming"
