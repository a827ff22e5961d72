#!/usr/bin/env bash
# The main job on the embedded default (SQLite and local folders) in a fresh demo home:
# three partners apply and are approved, contribute real Korean documents from the open
# corpus (one of them a disguised copy of another's), and see their receipts and balances.
set -euo pipefail
cd "$(dirname "$0")/.."
export TOKENCLUB_HOME="${TOKENCLUB_DEMO_HOME:-.tokenclub-demo}"
CORPORA="${TOKENCLUB_CORPORA:-../shared/corpora}"
rm -rf "$TOKENCLUB_HOME"
tc=.venv/bin/tokenclub
mkdir -p "$TOKENCLUB_HOME/demo-input"
input="$TOKENCLUB_HOME/demo-input"

.venv/bin/python scripts/demo_inputs.py "$CORPORA" "$input"

$tc init
$tc partner add "국회 의안 아카이브" --org-type public --description "bills and review reports (PDF, HWP, HWPX)"
$tc partner add "청원 게시판 아카이브" --org-type media --description "citizen petitions 2019 (JSONL)"
$tc partner add "재배포 업체" --org-type enterprise --description "a reseller whose archive copies others"
for id in 1 2 3; do $tc partner approve "$id" >/dev/null; done
# Partner 1 asks for partner 2's text: a partner may read its own text (TOKENCLUB_GUARD_OWN_TEXT),
# never another partner's.
key=$($tc key create --partner 1 --name demo --json | .venv/bin/python -c "import json,sys; print(json.load(sys.stdin)['key'])")

echo "== partner 1 contributes official documents"
$tc ingest --partner 1 "$CORPORA/samples"
echo "== partner 2 contributes a month of petitions"
$tc ingest --partner 2 "$input/petitions-2019-06.jsonl"
echo "== partner 3 uploads a zip holding a disguised copy of partner 2's petitions"
$tc ingest --partner 3 "$input/reseller.zip"
echo "== partner 2 sends the same upload again: nothing is credited twice"
$tc ingest --partner 2 "$input/petitions-2019-06.jsonl" --json | head -c 300; echo

$tc partner list
for id in 1 2 3; do $tc balance --partner "$id"; done

echo "== the leak guard indexed every accepted document: a copied passage is recognised, fresh text passes"
passage=$(head -n 1 "$input/petitions-2019-06.jsonl" | .venv/bin/python -c "import json,sys; print(json.load(sys.stdin)['content'][:150])")
$tc guard check "$passage"
$tc guard check "오늘 회의에서는 내년도 예산 편성 방향과 지역 균형 발전 과제를 함께 논의하였다."

echo "== the gateway starts the embedded llama.cpp server (SmolLM2-135M) and partner 1 uses its free tokens"
port=$(.venv/bin/python -c "import socket; s=socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")
$tc serve --port "$port" &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null' EXIT
for _ in $(seq 1 240); do
    curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break
    sleep 0.5
done
.venv/bin/python scripts/demo_api.py "http://127.0.0.1:$port/v1" "$key" smollm2-135m-instruct "$passage"
$tc usage --partner 1
$tc balance --partner 1
$tc guard stopped
$tc guard events --limit 5
$tc ledger audit
kill "$server"
wait "$server" || true
trap - EXIT
