"""No overdraft under concurrency: 50 debits race for a balance that covers only some."""

from __future__ import annotations

import threading

from tokenclub.accounts.customers import balance_summary, create_customer
from tokenclub.db.engine import Database
from tokenclub.errors import InsufficientBalanceError
from tokenclub.ledger.operations import grant_free_tokens, spend_free_tokens
from tokenclub.ledger.posting import audit

RACERS = 50
DEBIT = 70
ALLOWANCE = 1_000  # covers 14 debits of 70, with 20 left over


def _race(database: Database, customer_id: int, keys: list[str]) -> tuple[int, int, list[BaseException]]:
    barrier = threading.Barrier(len(keys))
    lock = threading.Lock()
    outcome = {"ok": 0, "refused": 0}
    unexpected: list[BaseException] = []

    def debit(key: str) -> None:
        barrier.wait()
        try:
            with database.transaction() as session:
                spend_free_tokens(session, customer_id, DEBIT, key)
            with lock:
                outcome["ok"] += 1
        except InsufficientBalanceError:
            with lock:
                outcome["refused"] += 1
        except BaseException as exc:
            unexpected.append(exc)

    threads = [threading.Thread(target=debit, args=(key,)) for key in keys]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return outcome["ok"], outcome["refused"], unexpected


def _setup(database: Database) -> int:
    with database.transaction() as session:
        cid = create_customer(session, "racer").id
        grant_free_tokens(session, cid, ALLOWANCE, "grant")
    return cid


def test_fifty_concurrent_debits_never_overdraw(db: Database) -> None:
    cid = _setup(db)
    ok, refused, unexpected = _race(db, cid, [f"debit-{i}" for i in range(RACERS)])
    assert unexpected == []
    assert (ok, refused) == (ALLOWANCE // DEBIT, RACERS - ALLOWANCE // DEBIT)
    with db.transaction() as session:
        summary = balance_summary(session, cid)
        assert audit(session) == []
    assert summary["free_tokens_left"] == ALLOWANCE - 14 * DEBIT == 20
    assert summary["free_tokens_used"] == 14 * DEBIT


def test_concurrent_replays_of_one_key_post_once(db: Database) -> None:
    cid = _setup(db)
    ok, refused, unexpected = _race(db, cid, ["same-key"] * 20)
    assert unexpected == []
    assert (ok, refused) == (20, 0)
    with db.transaction() as session:
        assert balance_summary(session, cid)["free_tokens_used"] == DEBIT
        assert audit(session) == []
