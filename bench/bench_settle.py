"""Settling one period at scale: 100,000 partners and 10 million usage events, on SQLite.

The data is bulk-loaded with plain SQL (executemany on one sqlite3 connection, journal off)
and only the settle is timed. The reference in the same run is a naive settle over the same
database: one weight query, one usage query and one `post()` per partner, with
`fractions.Fraction` largest remainder; it runs in a transaction that is rolled back, then
tokenclub's set-based `close_period` runs and commits. Both must produce the same payouts.
A second row times the allocation maths alone (integers against fractions).

    .venv/bin/python bench/bench_settle.py                       # 100,000 partners, 10M events
    .venv/bin/python bench/bench_settle.py --partners 2000 --events 100000   # a smoke run
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import tempfile
import time
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

from rich.console import Console
from rich.table import Table
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tokenclub.db.engine import Database
from tokenclub.db.migrate import upgrade
from tokenclub.db.schema import CorpusDocument, Customer, LedgerAccount, Partner, UsageEvent
from tokenclub.ledger.chart import (
    API_REVENUE_KRW,
    CUSTOMER_KINDS,
    PAYABLE_KRW,
    PROFIT_SHARE_EXPENSE_KRW,
    RECEIVABLE_KRW,
    customer_account,
    system_account,
)
from tokenclub.ledger.operations import PAYOUT_KIND
from tokenclub.ledger.posting import Leg, ensure_system_accounts, post
from tokenclub.ledger.pricing import PriceList
from tokenclub.settlement.allocation import allocate, free_usage_krw, pay_out, pool_krw
from tokenclub.settlement.periods import RecordKind, add_record, get_period, record_totals
from tokenclub.settlement.settle import (
    Settlement,
    Terms,
    api_revenue_krw,
    close_period,
    free_usage,
    payout_key,
)
from tokenclub.settlement.weights import Bounds, CreditedTokens

PERIOD = "2026-10"
START = datetime(2026, 10, 1, tzinfo=UTC)
TERMS = Terms(Decimal("0.3"), 1_000, PriceList(2_000, 8_000))
CHUNK = 200_000
STAMPS = 10_000
PAYING_CUSTOMERS = 1_000


def _stamp(moment: datetime) -> str:
    """The text SQLAlchemy's SQLite DateTime stores, so raw rows compare like ORM rows."""
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f")


Event = tuple[int, str, int, int, int, int, int, int, int, int, int, str]
"""id, request_id, customer, key, prompt, completion, free ×2, paid ×2, krw, created_at."""


def _chunks(rows: Iterator[Event]) -> Iterator[list[Event]]:
    chunk: list[Event] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) == CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def load(path: Path, partners: int, events: int, paid_share: float, seed: int) -> None:
    """Partners with documents, customers with ledger accounts and keys, usage and paid revenue."""
    rng = random.Random(seed)
    db = Database(f"sqlite:///{path}")
    upgrade(db.engine)
    with db.transaction() as session:
        ensure_system_accounts(session)
        system = {
            code: account_id
            for account_id, code in session.execute(
                select(LedgerAccount.id, LedgerAccount.code).where(LedgerAccount.customer_id.is_(None))
            )
        }
    db.dispose()
    conn = sqlite3.connect(path)
    conn.executescript("PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF; PRAGMA cache_size=-1000000;")
    now = _stamp(START)
    inside = [_stamp(START + timedelta(seconds=31 * 86_400 * i // STAMPS)) for i in range(STAMPS)]
    customers = partners + PAYING_CUSTOMERS
    conn.executemany(
        "INSERT INTO partners (id, name, contact, org_type, data_description, status, accepted_words,"
        " created_at, decision_note) VALUES (?, ?, '', 'other', '', 'approved', 0, ?, '')",
        ((p, f"partner-{p:07d}", now) for p in range(1, partners + 1)),
    )
    conn.executemany(
        "INSERT INTO customers (id, name, partner_id, created_at) VALUES (?, ?, ?, ?)",
        ((c, f"customer-{c}", c if c <= partners else None, now) for c in range(1, customers + 1)),
    )
    conn.executemany(
        "INSERT INTO api_keys (id, customer_id, name, display_prefix, key_hash, created_at)"
        " VALUES (?, ?, '', 'tcsk-bench', ?, ?)",
        ((c, c, f"{c:064x}", now) for c in range(1, customers + 1)),
    )
    conn.executemany(
        "INSERT INTO ledger_accounts (code, customer_id, kind, unit, normal, guarded, balance, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?, 0, ?)",
        (
            (customer_account(c, k), c, k.name, k.unit.value, k.normal.value, k.guarded, now)
            for c in range(1, customers + 1)
            for k in CUSTOMER_KINDS
        ),
    )
    conn.executemany(
        "INSERT INTO uploads (id, partner_id, status, files, batch_size, tokenizer_fingerprint, created_at)"
        " VALUES (?, ?, 'done', '[]', 256, 'bench', ?)",
        ((f"u{p}", p, now) for p in range(1, partners + 1)),
    )
    conn.executemany(
        "INSERT INTO corpus_documents (doc_id, dedup_key, upload_id, partner_id, batch_seq, source, words,"
        " tokens, tokenizer_fingerprint, minhash, created_at)"
        " VALUES (?, ?, ?, ?, 0, 'bench', ?, ?, 'bench', x'', ?)",
        (
            (f"d{p}-{d}", f"d{p}-{d}", f"u{p}", p, tokens // 2, tokens, inside[rng.randrange(STAMPS)])
            for p in range(1, partners + 1)
            for d in range(3)
            for tokens in [int(10 ** rng.uniform(3, 8))]
        ),
    )
    receivable = {
        c: account_id
        for c, account_id in conn.execute(
            "SELECT customer_id, id FROM ledger_accounts WHERE kind = ? AND customer_id > ?",
            (RECEIVABLE_KRW.name, partners),
        )
    }
    revenue_account = system[system_account(API_REVENUE_KRW)]
    owed: dict[int, int] = {}
    paid_events = int(events * paid_share)
    for chunk in _chunks(_events(rng, events, paid_events, partners, inside)):
        conn.executemany(
            "INSERT INTO usage_events (id, request_id, customer_id, key_id, model, endpoint, streamed,"
            " prompt_tokens, completion_tokens, free_prompt_tokens, free_completion_tokens,"
            " paid_prompt_tokens, paid_completion_tokens, krw, latency_ms, status, created_at)"
            " VALUES (?, ?, ?, ?, 'bench', 'chat', 0, ?, ?, ?, ?, ?, ?, ?, 5, 'ok', ?)",
            chunk,
        )
        paid = [row for row in chunk if row[10]]
        conn.executemany(
            "INSERT INTO ledger_transactions (id, idempotency_key, kind, memo, digest, created_at)"
            " VALUES (?, ?, 'api_usage', '', 'bench', ?)",
            ((row[0], f"settle:{row[1]}", row[11]) for row in paid),
        )
        conn.executemany(
            "INSERT INTO ledger_entries (transaction_id, account_id, amount) VALUES (?, ?, ?)",
            (
                leg
                for row in paid
                for leg in ((row[0], receivable[row[2]], row[10]), (row[0], revenue_account, -row[10]))
            ),
        )
        for row in paid:
            owed[row[2]] = owed.get(row[2], 0) + row[10]
    conn.executemany(
        "UPDATE ledger_accounts SET balance = ? WHERE id = ?",
        [(krw, receivable[c]) for c, krw in owed.items()] + [(-sum(owed.values()), revenue_account)],
    )
    conn.commit()
    conn.execute("ANALYZE")
    conn.close()


def _events(
    rng: random.Random, events: int, paid_events: int, partners: int, stamps: list[str]
) -> Iterator[Event]:
    """Free usage by partners' keys, then paid usage by paying customers (one ledger transaction each)."""
    for i in range(1, events + 1):
        prompt, completion = rng.randrange(10, 2_000), rng.randrange(10, 1_000)
        if i <= events - paid_events:
            customer = rng.randrange(1, partners + 1)
            row = (prompt, completion, prompt, completion, 0, 0, 0)
        else:
            customer = partners + rng.randrange(1, PAYING_CUSTOMERS + 1)
            krw = max(1, TERMS.prices.cost_micro_krw(prompt, completion) // 1_000_000)
            row = (prompt, completion, 0, 0, prompt, completion, krw)
        yield (i, f"r{i}", customer, customer, *row, stamps[i % STAMPS])


def fraction_allocate(pool: int, weights: Mapping[str, int]) -> dict[str, int]:
    """The reference maths: exact shares as Fractions, floors, then the largest fractional parts."""
    total = sum(weights.values())
    exact = {key: Fraction(pool * weight, total) for key, weight in weights.items()}
    shares = {key: int(share) for key, share in exact.items()}
    left = pool - sum(shares.values())
    ranked = sorted(weights, key=lambda key: (-(exact[key] - shares[key]), -weights[key], key))
    for key in ranked[:left]:
        shares[key] += 1
    return shares


def naive_settle(session: Session, terms: Terms) -> dict[int, int]:
    """Per-partner queries and postings: what a first implementation would do. Returns payouts."""
    period = get_period(session, PERIOD)
    bounds = Bounds(period.starts_at, period.ends_at)
    partners = session.execute(select(Partner.id, Partner.name).order_by(Partner.id)).all()
    weights: dict[int, int] = {}
    for partner_id, _ in partners:
        tokens = session.scalar(
            select(func.sum(CorpusDocument.tokens)).where(
                CorpusDocument.partner_id == partner_id, CorpusDocument.created_at < bounds.ends_at
            )
        )
        if tokens:
            weights[partner_id] = int(tokens)
    records = record_totals(session, period)
    pool = pool_krw(
        api_revenue_krw(session, bounds) + records[RecordKind.REVENUE],
        records[RecordKind.COST],
        Fraction(terms.pool_rate),
    )
    names = dict(partners)
    by_name = fraction_allocate(pool, {names[p]: w for p, w in weights.items()})
    payouts = pay_out({p: by_name[names[p]] for p in weights}, {}, terms.min_payout_krw)
    expense = system_account(PROFIT_SHARE_EXPENSE_KRW)
    paid: dict[int, int] = {}
    for partner_id, _ in partners:
        customer = session.scalar(select(Customer.id).where(Customer.partner_id == partner_id))
        assert customer is not None
        free_prompt, free_completion = session.execute(
            select(
                func.coalesce(func.sum(UsageEvent.free_prompt_tokens), 0),
                func.coalesce(func.sum(UsageEvent.free_completion_tokens), 0),
            ).where(
                UsageEvent.customer_id == customer,
                UsageEvent.created_at >= bounds.starts_at,
                UsageEvent.created_at < bounds.ends_at,
            )
        ).one()
        # Valued and dropped: the reference does the statement's work without storing lines.
        free_usage_krw(int(free_prompt), int(free_completion), terms.prices)
        amount = payouts[partner_id].paid if partner_id in payouts else 0
        if amount:
            post(
                session,
                payout_key(PERIOD, partner_id),
                PAYOUT_KIND,
                [Leg(expense, amount), Leg(customer_account(customer, PAYABLE_KRW), -amount)],
            )
            paid[partner_id] = amount
    return paid


def _run(
    db: Database, manual_revenue_krw: int
) -> tuple[float, dict[int, int], float, Settlement, dict[str, float]]:
    """The reference (rolled back), then the real close (committed), then its read queries alone."""
    with db.transaction() as session:
        add_record(session, PERIOD, RecordKind.REVENUE, manual_revenue_krw, "enterprise contracts")
    with Session(db.engine) as session:
        session.begin()
        t0 = time.perf_counter()
        reference = naive_settle(session, TERMS)
        naive_s = time.perf_counter() - t0
        session.rollback()
    t0 = time.perf_counter()
    with db.transaction() as session:
        result = close_period(session, PERIOD, TERMS, now=datetime.now(UTC))
    settle_s = time.perf_counter() - t0
    bounds = Bounds(result.starts_at, result.ends_at)
    parts: dict[str, float] = {}
    with db.transaction() as session:
        for label, query in (
            ("weights (credited tokens)", lambda: CreditedTokens().weights(session, bounds)),
            ("API revenue (ledger)", lambda: api_revenue_krw(session, bounds)),
            ("free usage (usage events)", lambda: free_usage(session, bounds)),
        ):
            t0 = time.perf_counter()
            query()
            parts[label] = time.perf_counter() - t0
    return naive_s, reference, settle_s, result, parts


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--partners", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--paid-share", type=float, default=0.1, help="Share of events that are paid.")
    parser.add_argument(
        "--manual-revenue-krw",
        type=int,
        default=1_000_000_000,
        help="Revenue recorded by hand (contracts), so that most partners pass the minimum payout.",
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--dir", type=Path, default=None, help="Where the SQLite file goes (default: a temp dir)."
    )
    args = parser.parse_args()
    console = Console(width=130)
    with tempfile.TemporaryDirectory(prefix="bench-settle-", dir=args.dir) as folder:
        path = Path(folder) / "settle.db"
        started = time.perf_counter()
        load(path, args.partners, args.events, args.paid_share, args.seed)
        console.print(
            f"loaded {args.partners:,} partners, {args.events:,} usage events"
            f" ({args.paid_share:.0%} paid, one ledger transaction each)"
            f" in {time.perf_counter() - started:.0f} s;"
            f" database {path.stat().st_size / 2**30:.2f} GiB"
        )
        db = Database(f"sqlite:///{path}")
        try:
            naive_s, reference, settle_s, result, parts = _run(db, args.manual_revenue_krw)
        finally:
            db.dispose()
    ours = {line.partner_id: line.paid_krw for line in result.lines if line.paid_krw}
    assert ours == reference, "the naive and the set-based settle disagree"
    weights = {line.partner_id: line.tokens for line in result.lines if line.tokens}
    keyed = {f"partner-{p:07d}": w for p, w in weights.items()}
    t0 = time.perf_counter()
    exact = allocate(result.pool_krw, keyed)
    int_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    assert fraction_allocate(result.pool_krw, keyed) == exact
    fraction_s = time.perf_counter() - t0

    table = Table(title=f"settle {PERIOD}: {args.partners:,} partners, {args.events:,} usage events (SQLite)")
    for column in ("what", "tokenclub", "reference", "reference / tokenclub"):
        table.add_column(column, justify="left" if column == "what" else "right")
    table.add_row(
        "settle the period (queries, maths, lines, payouts)",
        f"{settle_s:.2f} s",
        f"{naive_s:.2f} s (per-partner queries + post())",
        f"{naive_s / settle_s:.1f}x",
    )
    for label, seconds in parts.items():
        table.add_row(f"  of which: {label}", f"{seconds:.2f} s", "", "")
    table.add_row(
        f"allocate the pool among {len(keyed):,} partners",
        f"{int_s * 1000:.0f} ms (integers)",
        f"{fraction_s * 1000:.0f} ms (fractions.Fraction)",
        f"{fraction_s / int_s:.1f}x",
    )
    console.print(table)
    console.print(
        f"pool {result.pool_krw:,} KRW from revenue {result.revenue_krw:,} KRW; {len(ours):,} payouts"
        f" totalling {sum(ours.values()):,} KRW;"
        f" carried forward {sum(line.carried_out_krw for line in result.lines):,} KRW"
    )


if __name__ == "__main__":
    main()
