"""`tokenclub audit memorization` and `audit redteam` over real HTTP, directly and through the gateway.

The model is `EchoModel` on 127.0.0.1, a worst case that has memorised the corpus: this is a
real HTTP test of the probing, the comparison and the rates, not of a language model (the
embedded SmolLM2 has memorised none of this corpus; docs/leak-guard.md gives its figures).
The gateway in front of it is the real one with the guard on the home's index.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from tests.cli.helpers import run_cli
from tests.gateway.conftest import config
from tests.gateway.fake_upstream import serve_in_thread
from tests.guard.echo_model import EchoModel
from tests.guard.homes import make_home
from tests.ingest.fixtures import petitions
from tokenclub.accounts.customers import create_customer
from tokenclub.accounts.keys import create_key
from tokenclub.corpus.dump import iter_corpus
from tokenclub.gateway.app import create_app
from tokenclub.gateway.upstream import ModelRoute
from tokenclub.guard.audits.extraction import similarity
from tokenclub.guard.service import GatewayGuard
from tokenclub.ledger.operations import grant_free_tokens

MODEL = "echo"
GUARDED = ("direct_repetition", "continuation", "disguise", "translation_round_trip")
"""Families every reply of which carries the passage when the model obeys (here: echoes)."""


@dataclass(frozen=True)
class Setup:
    home: Path
    database_url: str
    model: EchoModel
    direct: str
    gateway: str
    key: str


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    """A home with 18 petitions of one partner, the echo model, and a guarded gateway before it."""
    home = tmp_path_factory.mktemp("audit") / "home"
    db = make_home(home, [petitions(600, 18)])
    model = EchoModel([doc["text"] for doc in iter_corpus(db, home)])
    with db.transaction() as session:
        customer = create_customer(session, "auditor").id
        grant_free_tokens(session, customer, 10**9, "audit-grant")
        key, _ = create_key(session, customer)
    guard = GatewayGuard(home / "guard", "block", "strict", check_every_s=0.0)
    with serve_in_thread(model.app()) as direct:
        routes = {MODEL: ModelRoute(MODEL, direct + "/v1", MODEL)}
        with serve_in_thread(create_app(replace(config(db, direct), routes=routes, guard=guard))) as gateway:
            yield Setup(home, db.url, model, direct + "/v1", gateway + "/v1", key)
    db.dispose()


def _audit(setup: Setup, *args: str) -> dict[str, object]:
    result = run_cli(setup.home, "audit", *args, "--model", MODEL, "--json", database_url=setup.database_url)
    assert result.returncode == 0, result.stderr
    report: dict[str, object] = json.loads(result.stdout)
    return report


def test_similarity_is_on_guard_letters() -> None:
    suffix = "청원 게시판에 올라온 글입니다."
    assert similarity("청원게시판에  올라온 글입니다!!", suffix) == 1.0
    assert 0.9 <= similarity("청원 게시판에 올라온 굴입니다.", suffix) < 1.0
    assert similarity("", suffix) == 0.0


def test_memorization_rates_directly_and_through_the_gateway(setup: Setup) -> None:
    setup.model.served.clear()
    direct = _audit(setup, "memorization", "--model-url", setup.direct, "--samples", "12")
    served = list(setup.model.served)
    assert direct["samples"] == len(served) == 12
    assert direct["exact"] == served.count("exact") > 0
    assert direct["near_exact"] == served.count("exact") + served.count("near")
    assert direct["exact_rate"] == served.count("exact") / 12
    assert direct["blocked"] == 0

    setup.model.served.clear()
    guarded = _audit(
        setup, "memorization", "--model-url", setup.gateway, "--api-key", setup.key, "--samples", "12"
    )
    assert setup.model.served == served
    assert (guarded["exact"], guarded["near_exact"]) == (0, 0)
    assert guarded["blocked"] == served.count("exact") + served.count("near")


def test_redteam_leaks_without_the_guard_and_not_through_it(setup: Setup) -> None:
    setup.model.served.clear()
    report = _audit(
        setup,
        "redteam",
        "--gateway",
        setup.gateway,
        "--key",
        setup.key,
        "--direct-url",
        setup.direct,
        "--samples",
        "3",
        "--max-tokens",
        "2000",
    )
    assert report["targets"] == 3
    on, off = report["guard_on"], report["guard_off"]
    assert isinstance(on, dict) and isinstance(off, dict)
    fresh = setup.model.served.count("fresh") // 2  # continuations the model did not memorise
    assert len(setup.model.served) == 2 * 3
    assert off["continuation"]["leaked"] == 2 * 3 - fresh
    for family in GUARDED:
        assert off[family]["leaked"] == off[family]["attempts"] - (fresh if family == "continuation" else 0)
        assert on[family]["leaked"] == 0, family
        assert on[family]["stopped"] == off[family]["leaked"] > 0, family
    assert off["divergence"]["leaked"] == on["divergence"]["leaked"] == 0
    assert on["all"]["attempts"] == off["all"]["attempts"] == 3 * 10 + 2
    assert on["sentence_by_sentence"]["leaked"] <= off["sentence_by_sentence"]["leaked"]


def test_an_unreachable_model_is_a_one_line_error(setup: Setup) -> None:
    result = run_cli(
        setup.home,
        "audit",
        "memorization",
        "--model-url",
        "http://127.0.0.1:9/v1",
        "--samples",
        "1",
        database_url=setup.database_url,
    )
    assert result.returncode != 0
    assert result.stderr.strip().startswith("error: http://127.0.0.1:9/v1:")
