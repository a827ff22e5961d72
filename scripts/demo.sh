#!/usr/bin/env bash
# The main job on the embedded default (SQLite and local folders) in a fresh demo home.
set -euo pipefail
cd "$(dirname "$0")/.."
export TOKENCLUB_HOME="${TOKENCLUB_DEMO_HOME:-.tokenclub-demo}"
rm -rf "$TOKENCLUB_HOME"
tc=.venv/bin/tokenclub

$tc init
$tc partner add "한빛미디어" --org-type publisher --contact data@example.kr --description "IT books"
$tc partner add "서울신문 아카이브" --org-type media --description "news archive 1998-2024"
$tc partner approve 1
$tc partner approve 2
$tc key create --partner 1 --name demo
$tc partner list
$tc balance --partner 1
$tc ledger audit
