"""Printing results: one JSON document for machines, a Rich table for people.

Every command imports this module, so it stays light: the database and the corpus store are
imported inside the helpers that open them (see `cli/main.py`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from tokenclub.corpus.store import CorpusStore

console = Console()

JSON_OPTION = typer.Option(False, "--json", help="Print JSON for machines instead of tables.")


def print_json(data: Any) -> None:
    typer.echo(json.dumps(data, ensure_ascii=False, default=str))


def print_record(title: str, record: Mapping[str, Any]) -> None:
    table = Table(title=title, show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value")
    for name, value in record.items():
        table.add_row(
            name, f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else str(value)
        )
    console.print(table)


def print_rows(title: str, columns: Sequence[str], rows: Sequence[Mapping[str, Any]]) -> None:
    table = Table(title=title)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*(str(row.get(column, "")) for column in columns))
    console.print(table)


def emit(data: Any, json_out: bool, title: str) -> None:
    """The one place that decides between JSON and a table of a single record."""
    if json_out:
        print_json(data)
    else:
        print_record(title, data)


@contextmanager
def session_scope() -> Iterator[Session]:
    """A database transaction for one command; it commits only if the command succeeds."""
    from tokenclub.home import open_database
    from tokenclub.settings import get_settings

    db = open_database(get_settings())
    try:
        with db.transaction() as session:
            yield session
    finally:
        db.dispose()


def corpus_store() -> CorpusStore:
    """The home's corpus store, on the configured filesystem."""
    from tokenclub.corpus.store import CorpusStore
    from tokenclub.settings import get_settings
    from tokenclub.storage import store_child

    settings = get_settings()
    return CorpusStore(store_child(settings.home, settings.store_url, "corpus"))
