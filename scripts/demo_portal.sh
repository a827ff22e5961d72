#!/usr/bin/env bash
# The portal story on the embedded default: the first operator is made on the command line,
# a newspaper applies through the web form, is approved, uploads through the data API with the
# openai SDK, a worker ingests it, and the partner reads its receipt, decisions and balance.
set -euo pipefail
cd "$(dirname "$0")/.."
export TOKENCLUB_HOME="${TOKENCLUB_DEMO_HOME:-.tokenclub-portal-demo}"
export TOKENCLUB_COOKIE_SECURE=false  # plain HTTP on loopback
CORPORA="${TOKENCLUB_CORPORA:-../shared/corpora}"
tc=.venv/bin/tokenclub
rm -rf "$TOKENCLUB_HOME"
$tc init >/dev/null
TOKENCLUB_NEW_PASSWORD="operator password 1" $tc user add ops@tokenclub.example --role operator --name 운영자
head -n 200 "$CORPORA/petitions/petitions_2019-05.jsonl" > "$TOKENCLUB_HOME/upload.jsonl"
head -n 20 "$CORPORA/petitions/petitions_2019-05.jsonl" >> "$TOKENCLUB_HOME/upload.jsonl"  # 20 duplicates
port=$(.venv/bin/python -c "import socket; s=socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")
$tc portal --port "$port" &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null' EXIT
for _ in $(seq 1 120); do
    curl -sf "http://127.0.0.1:$port/portal/login" >/dev/null && break
    sleep 0.5
done
.venv/bin/python scripts/demo_portal.py "http://127.0.0.1:$port" ops@tokenclub.example "operator password 1" \
    "$TOKENCLUB_HOME/upload.jsonl" "$tc"
echo "== to browse it: TOKENCLUB_HOME=$TOKENCLUB_HOME TOKENCLUB_COOKIE_SECURE=false $tc portal, then /portal (ops@tokenclub.example / operator password 1)"
kill "$server"
wait "$server" || true
trap - EXIT
