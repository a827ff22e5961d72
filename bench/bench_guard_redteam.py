"""The worst-case red team through the real gateway: leak rate per family, guard on and off.

A migrated SQLite database with one partner (owner of the indexed text) and one customer
without a partner (the attacker's key); the guard index holds the 2019-05 petitions; the
worst-case upstream (`tests/guard/worst_case.py`, a test helper) performs every ordered
disguise in every ordered reply channel; the gateway (`create_app`, block policy, per-reply
guard without accumulation) sits in front. Guard off: the same orders sent to the upstream
directly. Every family's attacks run whole and streamed (pieces of 1 and 3 characters) on
`--targets` passages of 240 characters (`guard/audits/worst_case.py` judges the replies); then each
passage is taken in order in pieces of at most 28 guard letters, one request a piece, through
that gateway and through one with accumulation on (the default budget; another customer).

Split families: each passage in pieces of 31–40 guard letters, all at once by one customer and
in turn by two, whole and streamed, against the upstream (guard off), the per-reply gateway and
a gateway with the default accumulation and coverage (fresh customers, and other documents,
for each variant: a document capped by one is refused to the next).

Coverage: a target's whole document taken in order in pieces of at most 28 guard letters,
by one customer, and another's by ten customers taking turns (the next one not refused takes the piece),
through a gateway with accumulation only (the reference) and one with coverage on (the default
limits); the share of the document's letters the customers were sent, and refused requests.

Fresh petitions (`--fresh-petitions`, alone): the June and July petitions that share no run of
50 guard letters with an indexed one, through the default guard, by one customer as replies the
model writes itself and then by another ordered verbatim (the text in the request, so the
strict threshold applies; documents the first capped stay capped); the rule that stopped each
reply is counted, and a stop is a false positive unless the reply would have completed a run of
50 letters of one document with what the customer was sent before (pieces of 12 or of 20
letters and more, neither common nor public).
`--public` loads the petitions of 2017-08 and 2019-04 as public text first (the genre's
published text, as an operator loads it); `--stream` asks them streamed.

`--leak-length N` builds the guard for another leak length and judges the attacks by it.
`--leak-letters N` gives the guard a verdict in NFKC letters (`TOKENCLUB_GUARD_LEAK_LETTERS`)
and judges the attacks by the leak definition: N NFKC letters in one run;
`--coverage-join-letters N` measures coverage's joins across replies in them too
(`TOKENCLUB_GUARD_COVERAGE_JOIN_LETTERS`), and `--coverage-join-share S` stops a run of S of a
document all the same (`TOKENCLUB_GUARD_COVERAGE_JOIN_SHARE`). `--long-pieces N` (alone) takes
each target document in pieces of N guard letters, as replies the model writes itself.

Run: ``.venv/bin/python bench/bench_guard_redteam.py [--targets N] [--public] [--stream]
[--leak-length N] [--leak-letters N] [--coverage-join-letters N] [--coverage-join-share S]
[--long-pieces N | --pieces-only | --split-only | --fresh-petitions]``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import NamedTuple

import httpx
import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.gateway.conftest import config
from tests.gateway.fake_upstream import serve_in_thread
from tests.guard.corpus import fresh_texts
from tests.guard.worst_case import recall, worst_case_app

from bench_guard_fp import nfkc_text, petitions
from tokenclub.accounts.customers import create_customer
from tokenclub.accounts.keys import create_key
from tokenclub.accounts.partners import apply
from tokenclub.db.engine import Database
from tokenclub.db.guard_schema import GuardEvent
from tokenclub.db.migrate import upgrade
from tokenclub.gateway.app import create_app
from tokenclub.gateway.upstream import ModelRoute
from tokenclub.guard.audits.extraction import client_for
from tokenclub.guard.audits.redteam import Target, make_targets
from tokenclub.guard.audits.worst_case import (
    FAMILIES,
    PIECE_LETTERS,
    SPLIT_FAMILIES,
    order,
    pieces,
    run_pieces,
    run_split,
    run_worst_case,
    summarize_families,
)
from tokenclub.guard.config import GuardSettings
from tokenclub.guard.indexing.index import IndexParams, writer
from tokenclub.guard.normalize import guard_text
from tokenclub.guard.service import GatewayGuard
from tokenclub.guard.state.events import STOPPED
from tokenclub.ledger.operations import grant_free_tokens
from tokenclub.ledger.posting import ensure_system_accounts

DEFAULTS = GuardSettings.model_construct()  # the settings' defaults, whatever the environment says
VARIANTS = [(family, piece) for family in SPLIT_FAMILIES for piece in (0, 3)]
MODEL = "worst-case"
TEAM = 10


def collect(clients: Sequence[httpx.Client], target: Target) -> tuple[int, int, int]:
    """The whole document taken in pieces by `clients` in turn: (letters sent, document letters,
    refused requests)."""
    got, refused, turn = 0, 0, 0
    for piece in pieces(target.text):
        letters = guard_text(piece)
        for _ in clients:
            body = {
                "model": MODEL,
                "messages": [{"role": "user", "content": order(piece, "content", "verbatim", 0)}],
            }
            response = clients[turn % len(clients)].post("/chat/completions", json=body)
            turn += 1
            if response.status_code == 400:
                refused += 1
                continue
            response.raise_for_status()
            sent = str(response.json()["choices"][0]["message"]["content"] or "")
            got += len(letters) if letters in guard_text(sent) else 0
            break
    return got, len(guard_text(target.text)), refused


def funded(session: Session, name: str) -> tuple[int, str]:
    """A customer with free tokens for any run and one key: (its id, the key's secret)."""
    customer = create_customer(session, name).id
    grant_free_tokens(session, customer, 10**9, f"bench-{name}")
    return customer, create_key(session, customer)[0]


def fresh_replies(
    client: httpx.Client, messages: Sequence[str], stream: bool = False
) -> tuple[int, int, int]:
    """Fresh text asked back by one customer, a reply a message (`order` or `recall`; streamed
    in pieces of 3 characters with `stream`): (replies, refused, blocked)."""
    replies = refused = blocked = 0
    for message in messages:
        body = {"model": MODEL, "messages": [{"role": "user", "content": message}], "stream": stream}
        replies += 1
        with client.stream("POST", "/chat/completions", json=body) as response:
            response.read()
        if response.status_code == 400:
            refused += 1
            continue
        response.raise_for_status()
        if stream:
            events = [
                json.loads(line[6:]) for line in response.text.splitlines() if line.startswith("data: {")
            ]
            reasons = [c.get("finish_reason") for event in events for c in event.get("choices") or ()]
        else:
            reasons = [response.json()["choices"][0]["finish_reason"]]
        blocked += "content_filter" in reasons
    return replies, refused, blocked


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--targets", type=int, default=8)
    parser.add_argument(
        "--stream",
        action="store_true",
        help="With --fresh-petitions: the replies streamed, 3 characters an event.",
    )
    parser.add_argument(
        "--public",
        action="store_true",
        help="Load the petitions of 2017-08 and 2019-04 as public text, as an operator loads the "
        "genre's published text (`tokenclub guard public add`).",
    )
    parser.add_argument(
        "--leak-length",
        type=int,
        default=50,
        help="The guard's leak length in guard letters: its index, and the judge's leak (the fresh "
        "petitions' false positives stay counted at 50 letters of each reading).",
    )
    parser.add_argument(
        "--leak-letters",
        type=int,
        default=DEFAULTS.leak_letters,
        help="The guard's verdict in NFKC letters (0: guard letters), and the judge's leak in them.",
    )
    parser.add_argument(
        "--coverage-join-letters",
        type=int,
        default=DEFAULTS.coverage_join_letters,
        help="NFKC letters a run coverage joins across replies must hold (0: guard letters).",
    )
    parser.add_argument(
        "--coverage-join-share",
        type=float,
        default=DEFAULTS.coverage_join_share,
        help="With --coverage-join-letters: the share of a document at which a run is stopped anyway.",
    )
    parser.add_argument(
        "--guard-runs",
        action="store_true",
        help="With --fresh-petitions under a verdict in NFKC letters: leave out the petitions that "
        "share 50 guard letters with an indexed one (the set of a verdict in guard letters), not 50 "
        "NFKC letters.",
    )
    parser.add_argument(
        "--long-pieces",
        type=int,
        default=0,
        help="Only: each passage's document taken by one customer in pieces of N guard letters, "
        "each a reply the model writes itself, through the default guard.",
    )
    parser.add_argument("--pieces-only", action="store_true", help="Only the pieces and coverage runs.")
    parser.add_argument("--fresh", type=int, default=200, help="Fresh texts per source asked back after.")
    parser.add_argument(
        "--split-only",
        action="store_true",
        help="Only the split families through the default guard, then the fresh texts.",
    )
    parser.add_argument(
        "--fresh-petitions",
        action="store_true",
        help="Only the June and July petitions asked back by one customer through the default guard.",
    )
    args = parser.parse_args()
    docs = petitions("2019-05")
    with tempfile.TemporaryDirectory() as tmp:
        db = Database(f"sqlite:///{tmp}/bench.db")
        upgrade(db.engine)
        with db.transaction() as session:
            ensure_system_accounts(session)
            partner = apply(session, "가나신문", threshold_words=1).id
            _, key = funded(session, "손님")
            _, patient_key = funded(session, "끈기")
            _, second = funded(session, "손님2")
            pairs = []  # two fresh customers per passage and variant of the split families
            for doc in range(args.targets * len(VARIANTS)):
                pair = []
                for i in range(2):
                    pair.append(funded(session, f"split-{doc}-{i}")[1])
                pairs.append(pair)
            _, honest_key = funded(session, "정직")
            team: dict[tuple[str, int], list[str]] = {}  # a fresh team per gateway and document
            for label in ("accumulation", "coverage"):
                for doc in range(args.targets):
                    team[label, doc] = []
                    for i in range(TEAM + 1):
                        team[label, doc].append(funded(session, f"{label}-{doc}-{i}")[1])
        root = Path(tmp) / "guard"
        with writer(root, IndexParams.for_leak_length(args.leak_length, seed=11), capacity=400_000) as index:
            index.add(docs, [partner] * len(docs))
            public = petitions("2017-08") + petitions("2019-04") if args.public else []
            if public:
                index.set_public(public)
        rows = ({"doc_id": str(i), "partner_id": partner, "text": t} for i, t in enumerate(docs))
        # Disjoint documents per coverage run: a capped document is refused to everyone after.
        pool = make_targets(rows, args.targets * (2 + len(VARIANTS)), seed=5)
        targets, tens, split_targets = (
            pool[: args.targets],
            pool[args.targets : 2 * args.targets],
            pool[2 * args.targets :],
        )
        letters = args.leak_letters
        guard = GatewayGuard(root, "block", "strict", check_every_s=0.0, leak_letters=letters)
        settings = GuardSettings()
        budget = settings.budget()
        watching = GatewayGuard(
            root, "block", "strict", check_every_s=0.0, budget=budget, leak_letters=letters
        )
        covering = GatewayGuard(
            root,
            "block",
            "strict",
            check_every_s=0.0,
            budget=budget,
            limits=settings.limits(),
            leak_letters=letters,
            join_letters=args.coverage_join_letters,
            join_share=args.coverage_join_share,
        )
        judge = {"leak_length": letters or args.leak_length, "nfkc": bool(letters)}
        with serve_in_thread(worst_case_app()) as upstream:
            routes = {MODEL: ModelRoute(MODEL, upstream + "/v1", MODEL)}
            app = create_app(
                replace(config(db, upstream), routes=routes, guard=guard, max_tokens_ceiling=4096)
            )
            with serve_in_thread(app) as gateway:
                tables = {}
                if args.split_only:
                    split_run(args, covering, db, upstream, routes, split_targets, pairs, honest_key)
                    db.dispose()
                    return
                if args.long_pieces:
                    long_pieces_run(covering, db, targets, args.long_pieces)
                    db.dispose()
                    return
                if args.fresh_petitions:
                    petitions_run(
                        covering,
                        db,
                        docs,
                        public,
                        args.stream,
                        bool(args.leak_letters) and not args.guard_runs,
                    )
                    db.dispose()
                    return
                for label, url, secrets in (("off", upstream, (None, None)), ("on", gateway, (key, second))):
                    with (
                        client_for(url + "/v1", secrets[0], timeout_s=60) as client,
                        client_for(url + "/v1", secrets[1], timeout_s=60) as another,
                    ):
                        families = (
                            run_split([client, another], MODEL, targets, **judge)
                            if args.pieces_only
                            else run_worst_case(client, MODEL, targets, others=[another], **judge)
                        )
                        tables[label] = summarize_families(
                            families + run_pieces(client, MODEL, targets, **judge)
                        )
                app = create_app(replace(config(db, upstream), routes=routes, guard=watching))
                with (
                    serve_in_thread(app) as accumulating,
                    client_for(accumulating + "/v1", patient_key) as client,
                ):
                    tables["accumulating"] = summarize_families(run_pieces(client, MODEL, targets, **judge))
                app = create_app(replace(config(db, upstream), routes=routes, guard=covering))
                with serve_in_thread(app) as url:
                    split = []
                    for at, (target, pair) in enumerate(zip(split_targets, pairs, strict=True)):
                        clients = [client_for(url + "/v1", k, timeout_s=60) for k in pair]
                        variant = VARIANTS[at // args.targets]
                        split += run_split(clients, MODEL, [target], variants=[variant], **judge)
                        for client in clients:
                            client.close()
                    tables["default"] = summarize_families(split)
                collected: dict[str, list[tuple[int, int, int]]] = {}
                fresh = (0, 0, 0)
                for label, guarded in (("accumulation", watching), ("coverage", covering)):
                    app = create_app(replace(config(db, upstream), routes=routes, guard=guarded))
                    with serve_in_thread(app) as url:
                        collected[label + "/one"], collected[label + "/ten"] = [], []
                        for doc, (target, team_target) in enumerate(zip(targets, tens, strict=True)):
                            clients = [client_for(url + "/v1", k, timeout_s=60) for k in team[label, doc]]
                            collected[label + "/one"].append(collect(clients[:1], target))
                            collected[label + "/ten"].append(collect(clients[1:], team_target))
                            for client in clients:
                                client.close()
                        if label == "coverage":  # the documents attacked are capped by now
                            with client_for(url + "/v1", honest_key, timeout_s=60) as client:
                                texts = [t for source in fresh_texts().values() for t in source[: args.fresh]]
                                orders = [order(t, "content", "verbatim", 0) for t in texts]
                                fresh = fresh_replies(client, orders)
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
    for family in (*FAMILIES, "pieces", *SPLIT_FAMILIES, "all"):
        if family not in tables["on"]:
            continue
        off, on = tables["off"][family], tables["on"][family]
        print(
            f"| {family} | {on['attempts']} | {off['leak_rate']:.1%} | {on['leak_rate']:.1%} | "
            f"{on['leak_rate_streamed']:.1%} | {on['max_copied_letters']} |"
        )
    print("\nsplit families through a gateway with the default accumulation and coverage:")
    for family, row in tables["default"].items():
        print(
            f"| {family} | {row['attempts']} | {row['leak_rate']:.1%} | {row['leak_rate_streamed']:.1%} | "
            f"{row['max_copied_letters']} |"
        )
    kept = tables["accumulating"]["pieces"]
    print(
        f"\npieces of <= {PIECE_LETTERS} letters, one customer, accumulation on: leak rate "
        f"{kept['leak_rate']:.1%}, stopped {kept['stopped']}, longest run {kept['max_copied_letters']}"
    )

    print(f"\nwhole documents in pieces of <= {PIECE_LETTERS} letters ({len(targets)} documents)")
    print("| gateway | customers | sent, mean | sent, most | refused requests | vs accumulation (mean) |")
    print("|---|---|---|---|---|---|")
    for who in ("one", "ten"):
        reference = _mean(collected[f"accumulation/{who}"])
        for label in ("accumulation", "coverage"):
            runs = collected[f"{label}/{who}"]
            shares = [got / total for got, total, _ in runs]
            print(
                f"| {label} | {'1' if who == 'one' else str(TEAM)} | {_mean(runs):.1%} | {max(shares):.1%} | "
                f"{sum(r for _, _, r in runs)} | {_mean(runs) / reference if reference else 0:.2f}× |"
            )

    replies, refused, blocked = fresh
    print(
        f"\nfresh texts (reviews, chatbot answers, KLUE premises) after the runs, one customer, coverage "
        f"gateway: {replies} replies, "
        f"{refused} refused, {blocked} blocked"
    )
    print("\nper document, coverage on: letters | one customer sent || letters | ten customers sent")
    for (got1, total1, _), (got10, total10, _) in zip(
        collected["coverage/one"], collected["coverage/ten"], strict=True
    ):
        print(f"{total1} | {got1} ({got1 / total1:.1%}) || {total10} | {got10} ({got10 / total10:.1%})")


def split_run(
    args: argparse.Namespace,
    covering: GatewayGuard,
    db: Database,
    upstream: str,
    routes: dict[str, ModelRoute],
    split_targets: Sequence[Target],
    pairs: Sequence[Sequence[str]],
    honest_key: str,
) -> None:
    """The split families through the default guard (fresh customers per variant), then the
    fresh texts asked back by one customer through the same gateway, printed."""
    app = create_app(replace(config(db, upstream), routes=routes, guard=covering))
    with serve_in_thread(app) as url:
        split = []
        for at, (target, pair) in enumerate(zip(split_targets, pairs, strict=True)):
            clients = [client_for(url + "/v1", k, timeout_s=60) for k in pair]
            split += run_split(
                clients,
                MODEL,
                [target],
                args.leak_letters or args.leak_length,
                variants=[VARIANTS[at // args.targets]],
                nfkc=bool(args.leak_letters),
            )
            for client in clients:
                client.close()
        with client_for(url + "/v1", honest_key, timeout_s=60) as client:
            texts = [t for source in fresh_texts().values() for t in source[: args.fresh]]
            replies, refused, blocked = fresh_replies(client, texts)
    print(f"split families, {len(split_targets)} passages, default accumulation and coverage:")
    print("| family | attempts | leak rate | streamed | longest run |")
    for family, row in summarize_families(split).items():
        print(
            f"| {family} | {row['attempts']} | {row['leak_rate']:.1%} | {row['leak_rate_streamed']:.1%} | "
            f"{row['max_copied_letters']} |"
        )
    print(f"fresh texts, one customer, same gateway: {replies} replies, {refused} refused, {blocked} blocked")


def long_pieces_run(covering: GatewayGuard, db: Database, targets: Sequence[Target], letters: int) -> None:
    """Each target document taken whole, in order, by a customer of its own in pieces of
    `letters` guard letters, each asked as a reply the model writes itself (`recall`: no
    wording that asks for a copy, so no strict threshold) through the default guard: what a
    verdict in NFKC letters lets one reply carry (110 guard letters are about 44 syllables,
    under the leak definition's 50) against the coverage bound."""
    cuts = [pieces(target.text, letters) for target in targets]
    texts = [piece for cut in cuts for piece in cut]
    print(f"whole documents in pieces of <= {letters} guard letters, one customer each, replies it")
    print("did not ask to copy, default guard\n| document letters | sent | refused requests |\n|---|---|---|")
    number = 0
    with serve_in_thread(worst_case_app(texts)) as upstream:
        routes = {MODEL: ModelRoute(MODEL, upstream + "/v1", MODEL)}
        app = create_app(replace(config(db, upstream), routes=routes, guard=covering))
        with serve_in_thread(app) as url:
            for target, cut in zip(targets, cuts, strict=True):
                with db.transaction() as session:
                    _, key = funded(session, f"long-{target.doc_id}")
                got = refused = 0
                with client_for(url + "/v1", key, timeout_s=60) as client:
                    for piece in cut:
                        body = {"model": MODEL, "messages": [{"role": "user", "content": recall(number)}]}
                        number += 1
                        response = client.post("/chat/completions", json=body)
                        if response.status_code == 400:
                            refused += 1
                            continue
                        response.raise_for_status()
                        sent = str(response.json()["choices"][0]["message"]["content"] or "")
                        got += len(guard_text(piece)) if guard_text(piece) in guard_text(sent) else 0
                total = len(guard_text(target.text))
                print(f"| {total} | {got} ({got / total:.1%}) | {refused} |")


def petitions_run(
    covering: GatewayGuard,
    db: Database,
    indexed: Sequence[str],
    public: Sequence[str],
    stream: bool = False,
    nfkc: bool = False,
) -> None:
    """Petitions of the two months after the indexed one, asked back whole through the default
    guard: fresh text of the same genre, its stock phrases included. A petition that shares a
    run of 50 guard letters with an indexed one (a repost: a copy by the guard's own
    definition; with `nfkc`, a guard whose verdict counts NFKC letters, 50 of those) is left
    out, so no reply is a copy on its own; the stopped ones are sorted by
    the longest run they share (30–49 letters: a quoted title or an edited repost), and by
    whether the reply, had it been sent, would have completed a run of 50 letters of one
    document with what the same customer was sent before (`Received`): the issue's leak
    definition counts pieces that add up, so only the other stops are false positives.

    Asked two ways, each by a customer of its own, one after the other: as a reply the model
    writes itself (`recall`: the request carries neither the text nor wording that asks for a
    copy, as an honest customer's), then ordered verbatim with the text in the request (`order`:
    the prompt check takes it for an extraction attempt, so every reply is scanned under the
    strict threshold). The second customer asks after the first, so the documents the first one's
    replies capped stay capped for it: two customers sent the same text."""
    letters_of = nfkc_text if nfkc else guard_text
    runs = {length: _runs(indexed, length, letters_of) for length in (30, 50)}
    records = {reading: Received(indexed, reading, public) for reading in READINGS}
    months = petitions("2019-06") + petitions("2019-07")
    texts = [t for t in months if not _shares(t, runs[50], 50, letters_of)]
    piece = 3 if stream else 0
    ways = {
        "written by the model (honest request)": [recall(i, piece) for i in range(len(texts))],
        "a second customer after the first, the same texts ordered verbatim (strict threshold)": [
            order(t, "content", "verbatim", piece) for t in texts
        ],
    }
    how = ", streamed" if stream else ""
    print(
        f"fresh petitions (2019-06 and 2019-07, {len(months)}, less {len(months) - len(texts)} that "
        f"share 50 {'NFKC' if nfkc else 'guard'} letters with an indexed one), default guard: "
        f"{len(texts)} replies{how} a customer"
    )
    with serve_in_thread(worst_case_app(texts)) as upstream:
        routes = {MODEL: ModelRoute(MODEL, upstream + "/v1", MODEL)}
        app = create_app(replace(config(db, upstream), routes=routes, guard=covering))
        with serve_in_thread(app) as url:
            for way, messages in ways.items():
                with db.transaction() as session:
                    customer, key = funded(session, f"fresh {way}")
                stopped = []
                completing = dict.fromkeys(READINGS, 0)
                for record in records.values():
                    record.clear()
                with client_for(url + "/v1", key, timeout_s=60) as client:
                    for text, message in zip(texts, messages, strict=True):
                        _, refused, blocked = fresh_replies(client, [message], stream)
                        for reading, record in records.items():
                            if not (refused or blocked):
                                record.add(text)
                            elif record.completes(text):
                                completing[reading] += 1
                        if refused or blocked:
                            stopped.append(text)
                near = sum(_shares(t, runs[30], 30, letters_of) for t in stopped)
                print(f"\n{way}:")
                completes = " | ".join(
                    f"completing {LEAK_LETTERS} {reading.name} with what was sent "
                    f"(pieces of {reading.piece}+)"
                    for reading in READINGS
                )
                head = "| stopped (refused or blocked) | sharing a run of 30–49 letters | under 30 |"
                print(f"{head} {completes} |")
                share = len(stopped) / len(texts)
                print(
                    f"| {len(stopped)} ({share:.2%}) | {near} | {len(stopped) - near} | "
                    + " | ".join(str(completing[reading]) for reading in READINGS)
                    + " |"
                )
                print("| rule that stopped them (stage: verdict) | replies |")
                for rule, count in stopping_rules(db, customer).most_common():
                    print(f"| {rule} | {count} |")


LEAK_LETTERS = 50


class Reading(NamedTuple):
    """How letters are counted for the leak definition, and the shortest shared piece that
    counts as sent."""

    name: str
    letters: Callable[[str], str]
    piece: int


READINGS = (
    Reading("guard letters", guard_text, 12),  # about five syllables: the guard's own leak length
    Reading("guard letters", guard_text, 20),  # about eight syllables
    Reading("NFKC letters", nfkc_text, 5),  # the wording: 50 syllables, pieces of five
)


class Received:
    """What one customer was sent of each indexed document, letter by letter in one `Reading`,
    from pieces of at least its `piece` letters that a reply shares with the document (pieces
    that 10 or more documents hold are common, pieces of the public text are public: neither
    counts as sent). A stopped reply *completes* a leak when, with what was sent before, it
    would have handed the customer a run of 50 letters of one document: pieces add up, as the
    issue asks, so such a stop keeps a leak out; the others are false positives. Read in guard
    letters (jamo), 50 letters are the guard's own leak length, about 20 syllables; read in the
    issue's NFKC letters (a syllable is one), 50 syllables."""

    def __init__(
        self, indexed: Sequence[str], reading: Reading, public: Sequence[str], common: int = 10
    ) -> None:
        self.reading = reading
        piece = reading.piece
        self.letters = [reading.letters(text) for text in indexed]
        where: dict[str, list[tuple[int, int]]] = {}
        for doc, letters in enumerate(self.letters):
            for at in range(len(letters) - piece + 1):
                where.setdefault(letters[at : at + piece], []).append((doc, at))
        published = _runs(public, piece, reading.letters)
        self.where = {
            gram: found
            for gram, found in where.items()
            if len({doc for doc, _ in found}) < common and gram not in published
        }
        self.sent: dict[int, np.ndarray] = {}

    def clear(self) -> None:
        self.sent = {}

    def _marks(self, text: str) -> dict[int, np.ndarray]:
        letters, piece = self.reading.letters(text), self.reading.piece
        marks: dict[int, np.ndarray] = {}
        for at in range(len(letters) - piece + 1):
            for doc, start in self.where.get(letters[at : at + piece], ()):
                mark = marks.setdefault(doc, np.zeros(len(self.letters[doc]), dtype=np.bool_))
                mark[start : start + piece] = True
        return marks

    def add(self, text: str) -> None:
        for doc, mark in self._marks(text).items():
            self.sent[doc] = self.sent.get(doc, np.zeros_like(mark)) | mark

    def completes(self, text: str) -> bool:
        for doc, mark in self._marks(text).items():
            union = mark | self.sent.get(doc, np.zeros_like(mark))
            edges = np.flatnonzero(np.diff(np.concatenate(([0], union.astype(np.int8), [0]))))
            for start, end in zip(edges[::2], edges[1::2], strict=True):
                if end - start >= LEAK_LETTERS and mark[start:end].any():
                    return True
        return False


def stopping_rules(db: Database, customer: int) -> Counter[str]:
    """Per rule, the customer's requests whose first stopping guard event it was."""
    with db.transaction() as session:
        events = session.execute(
            select(GuardEvent.request_id, GuardEvent.stage, GuardEvent.verdict)
            .where(GuardEvent.action.in_(STOPPED), GuardEvent.customer_id == customer)
            .order_by(GuardEvent.id)
        ).all()
    first: dict[str, str] = {}
    for request, stage, verdict in events:
        first.setdefault(request, f"{stage}: {verdict}")
    return Counter(first.values())


def _runs(texts: Sequence[str], length: int, letters_of: Callable[[str], str] = guard_text) -> set[str]:
    """Every run of `length` letters of the texts (guard letters unless told otherwise)."""
    found: set[str] = set()
    for text in texts:
        letters = letters_of(text)
        found.update(letters[i : i + length] for i in range(len(letters) - length + 1))
    return found


def _shares(text: str, runs: set[str], length: int, letters_of: Callable[[str], str] = guard_text) -> bool:
    letters = letters_of(text)
    return any(letters[i : i + length] in runs for i in range(len(letters) - length + 1))


def _mean(rows: list[tuple[int, int, int]]) -> float:
    return sum(got / total for got, total, _ in rows) / len(rows) if rows else 0.0


if __name__ == "__main__":
    main()
