"""The model registry: served models hold their snapshot's partners for the leak guard."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.export.homes import snapshot, two_partner_home
from tests.settlement.fixtures import LATER, TERMS, approved_partner, october
from tokenclub.accounts import partners
from tokenclub.db.engine import Database
from tokenclub.errors import InvalidInputError, NotFoundError
from tokenclub.export.registry import (
    freed_by_retirement,
    list_models,
    models_trained_on,
    partners_in_served_models,
    register_model,
    retire_model,
    serve_model,
    served_models_holding,
)
from tokenclub.settlement.settle import close_period
from tokenclub.settlement.statement import build_statement

THRESHOLD = 100_000_000


@pytest.fixture(scope="module")
def home_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    db = two_partner_home(tmp_path_factory.mktemp("registry") / "home")
    yield db
    db.dispose()


def test_served_models_decide_whose_withdrawn_text_stays_guarded(home_db: Database) -> None:
    db = home_db
    both = snapshot(db).id
    with db.transaction() as session:
        assert partners_in_served_models(session) == set()
        model = register_model(session, "ko-llm-1", both, "kim", served_as="ko-chat")
        assert (model.snapshot_id, model.served_as, model.registered_by) == (both, "ko-chat", "kim")
        assert partners_in_served_models(session) == {1, 2}
        partners.withdraw(session, 1, THRESHOLD)
    only_two = snapshot(db).id
    with db.transaction() as session:
        register_model(session, "ko-llm-2", only_two, "kim", served_as="ko-chat-2")
        # partner 1 withdrew, but ko-llm-1 saw its text and is still served: keep guarding it
        assert partners_in_served_models(session) == {1, 2}
        assert served_models_holding(session, 1) == ["ko-llm-1"]
        assert served_models_holding(session, 2) == ["ko-llm-1", "ko-llm-2"]
        retired = retire_model(session, "ko-llm-1")
        assert retired.served_as is None and retired.retired_at is not None
        assert partners_in_served_models(session) == {2}  # released by itself
        assert served_models_holding(session, 1) == []
        assert freed_by_retirement(session, both, {1}) == {1}
        assert freed_by_retirement(session, only_two, {1}) == set()  # not in that snapshot
        assert freed_by_retirement(session, both, {2}) == set()  # ko-llm-2 still serves it
        assert [m.name for m in models_trained_on(session, 1)] == ["ko-llm-1"]
        assert [m.name for m in models_trained_on(session, 2)] == ["ko-llm-1", "ko-llm-2"]
        with pytest.raises(InvalidInputError, match="a model named 'ko-llm-1' is already registered"):
            register_model(session, "ko-llm-1", only_two, "kim")
        assert serve_model(session, "ko-llm-1", "ko-chat").retired_at is None
        assert partners_in_served_models(session) == {1, 2}
        assert [(m.name, m.served_as) for m in list_models(session)] == [
            ("ko-llm-1", "ko-chat"),
            ("ko-llm-2", "ko-chat-2"),
        ]


def test_registry_refuses_bad_input(db: Database, tmp_path: Path) -> None:
    with db.transaction() as session:
        with pytest.raises(NotFoundError, match="snapshot 42 does not exist"):
            register_model(session, "m", 42, "kim")
        with pytest.raises(InvalidInputError, match="model name must be"):
            register_model(session, " ", 42, "kim")
        with pytest.raises(NotFoundError, match="model 'nope' is not registered"):
            retire_model(session, "nope")


def test_partner_statements_list_the_models_their_data_trained(db: Database) -> None:
    ids = october(db)
    with db.transaction() as session:
        late = approved_partner(session, "늦게 온 곳")  # no documents, so in no snapshot
        close_period(session, "2026-10", TERMS, now=LATER)
    first = snapshot(db).id
    with db.transaction() as session:
        register_model(session, "ko-llm-1", first, "kim", served_as="ko-chat")
        register_model(session, "ko-llm-2", first, "kim")
        statement = build_statement(session, ids["나래"], "2026-10")
        assert statement.trained_models == ("ko-llm-1", "ko-llm-2")
        assert statement.as_dict()["trained_models"] == "ko-llm-1, ko-llm-2"
        assert build_statement(session, late, "2026-10").trained_models == ()
