"""Key scopes at the gateway: a key made for uploads or statements cannot call the model."""

from __future__ import annotations

from collections.abc import Callable

import openai
import pytest
from sqlalchemy import func, select

from tests.gateway.conftest import MODEL, Customer
from tokenclub.accounts.keys import create_key
from tokenclub.db.engine import Database
from tokenclub.db.schema import CreditHold


def test_key_without_inference_scope_is_refused_and_holds_nothing(
    db: Database, gateway: str, make_customer: Callable[..., Customer]
) -> None:
    customer = make_customer(free=10_000)
    with db.transaction() as session:
        data_key, _ = create_key(session, customer.id, "uploader", ["data", "account"])
    client = openai.OpenAI(base_url=gateway, api_key=data_key, max_retries=0)
    with pytest.raises(openai.PermissionDeniedError, match="no inference scope") as refused:
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "안녕"}])
    assert refused.value.code == "insufficient_scope"
    with db.transaction() as session:
        assert session.scalar(select(func.count()).select_from(CreditHold)) == 0
    ok = openai.OpenAI(base_url=gateway, api_key=customer.key, max_retries=0)
    assert ok.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "안녕"}]).choices
