"""The worst-case red team through the real gateway: leak rate per family, guard on and off.

A migrated SQLite database with one partner (owner of the indexed text) and one customer
without a partner (the attacker's key); the guard index holds the 2019-05 petitions; the
worst-case upstream (`tests/guard/worst_case.py`, a test helper) performs every ordered
disguise in every ordered reply channel; the gateway (`create_app`, block policy, per-reply
guard without accumulation) sits in front. Guard off: the same orders sent to the upstream
directly. Every family's attacks run whole and streamed (pieces of 1 and 3 characters) on
`--targets` passages of 240 characters (`guard/worst_case.py` judges the replies); then each
passage is taken in order in pieces of at most 28 guard letters, one request a piece, through
that gateway and through one with accumulation on (the default budget; another customer).

Run: ``.venv/bin/python bench/bench_guard_redteam.py [--targets N]``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.gateway.conftest import config
from tests.gateway.fake_upstream import serve_in_thread
from tests.guard.worst_case import worst_case_app

from tokenclub.accounts.customers import create_customer
from tokenclub.accounts.keys import create_key
from tokenclub.accounts.partners import apply
from tokenclub.db.engine import Database
from tokenclub.db.migrate import upgrade
from tokenclub.gateway.app import create_app
from tokenclub.gateway.guard import GatewayGuard
from tokenclub.gateway.upstream import ModelRoute
from tokenclub.guard.audit import client_for
from tokenclub.guard.config import GuardSettings
from tokenclub.guard.index import IndexParams, writer
from tokenclub.guard.redteam import make_targets
from tokenclub.guard.worst_case import FAMILIES, PIECE_LETTERS, run_pieces, run_worst_case, summarize_families
from tokenclub.ledger.operations import grant_free_tokens
from tokenclub.ledger.posting import ensure_system_accounts

CORPORA = Path("/work/shared/corpora/petitions")
MODEL = "worst-case"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--targets", type=int, default=8)
    args = parser.parse_args()
    with (CORPORA / "petitions_2019-05.jsonl").open(encoding="utf-8") as fh:
        docs = [json.loads(line)["content"] for line in fh]
    with tempfile.TemporaryDirectory() as tmp:
        db = Database(f"sqlite:///{tmp}/bench.db")
        upgrade(db.engine)
        with db.transaction() as session:
            ensure_system_accounts(session)
            partner = apply(session, "가나신문", threshold_words=1).id
            attacker = create_customer(session, "손님").id
            grant_free_tokens(session, attacker, 10**9, "bench-grant")
            key, _ = create_key(session, attacker)
            patient = create_customer(session, "끈기").id
            grant_free_tokens(session, patient, 10**9, "bench-grant-2")
            patient_key, _ = create_key(session, patient)
        root = Path(tmp) / "guard"
        with writer(root, IndexParams.for_leak_length(50, seed=11), capacity=400_000) as index:
            index.add(docs, [partner] * len(docs))
        rows = ({"doc_id": str(i), "partner_id": partner, "text": t} for i, t in enumerate(docs))
        targets = make_targets(rows, args.targets, seed=5)
        guard = GatewayGuard(root, "block", "strict", check_every_s=0.0)
        watching = GatewayGuard(root, "block", "strict", check_every_s=0.0, budget=GuardSettings().budget())
        with serve_in_thread(worst_case_app()) as upstream:
            routes = {MODEL: ModelRoute(MODEL, upstream + "/v1", MODEL)}
            app = create_app(
                replace(config(db, upstream), routes=routes, guard=guard, max_tokens_ceiling=4096)
            )
            with serve_in_thread(app) as gateway:
                tables = {}
                for label, url, secret in (("off", upstream, None), ("on", gateway, key)):
                    with client_for(url + "/v1", secret, timeout_s=60) as client:
                        outcomes = run_worst_case(client, MODEL, targets, 50) + run_pieces(
                            client, MODEL, targets, 50
                        )
                        tables[label] = summarize_families(outcomes)
                app = create_app(replace(config(db, upstream), routes=routes, guard=watching))
                with (
                    serve_in_thread(app) as accumulating,
                    client_for(accumulating + "/v1", patient_key) as client,
                ):
                    tables["accumulating"] = summarize_families(run_pieces(client, MODEL, targets, 50))
        db.dispose()
    attacks = {family: len(pairs) * 3 for family, pairs in FAMILIES.items()}
    print(f"{len(targets)} passages of 240 characters; attacks per passage: {sum(attacks.values())}")
    columns = (
        "attempts",
        "leak rate, guard off",
        "leak rate, guard on",
        "streamed, guard on",
        "longest run on",
    )
    print("| family | " + " | ".join(columns) + " |")
    print("|---|---|---|---|---|---|")
    for family in (*FAMILIES, "pieces", "all"):
        off, on = tables["off"][family], tables["on"][family]
        print(
            f"| {family} | {on['attempts']} | {off['leak_rate']:.1%} | {on['leak_rate']:.1%} | "
            f"{on['leak_rate_streamed']:.1%} | {on['max_copied_letters']} |"
        )
    kept = tables["accumulating"]["pieces"]
    print(
        f"\npieces of <= {PIECE_LETTERS} letters, one customer, accumulation on: leak rate "
        f"{kept['leak_rate']:.1%}, stopped {kept['stopped']}, longest run {kept['max_copied_letters']}"
    )


if __name__ == "__main__":
    main()
