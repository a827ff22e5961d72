"""`tokenclub extract`: read files the way an upload is read, and show what came out.

For partners and operators checking a delivery before ingesting it: which files read,
as what, with how much text, and which did not and why.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from tokenclub.cli.output import JSON_OPTION, console
from tokenclub.cli.terminal import safe
from tokenclub.extract.document import ExtractedDocument, ExtractionFailure
from tokenclub.extract.reader import iter_extract
from tokenclub.extract.records import RecordOptions
from tokenclub.settings import get_settings

TABLE_ROWS = 200
"""Rows listed per table; a dump of a million records is summarised, not printed."""

_errors = Console(stderr=True)


def extract_command(
    paths: list[Path] = typer.Argument(..., help="Files, archives or folders to read."),
    text_fields: list[str] = typer.Option(
        [],
        "--text-field",
        help="Field or column that holds the text in dumps (JSONL, CSV, SQL); repeat for several. "
        "Default: detected by name, else guessed (and reported in each document's metadata).",
    ),
    json_out: bool = JSON_OPTION,
) -> None:
    """Read files as an upload would be read; list the documents and the files that failed.

    With --json, one JSON object per line on stdout, in reading order: a document, or a file
    that could not be read as {"source": …, "error": …}. Exits with status 0 when everything
    was read and 1 when anything failed (a summary line on stderr says how much).
    """
    table = _document_table()
    documents = 0
    failed = 0
    failures: list[ExtractionFailure] = []
    columns: Counter[str] = Counter()
    options = RecordOptions(
        text_fields=tuple(text_fields) or None, max_bad_byte_share=get_settings().max_bad_byte_share
    )
    for path in paths:
        for item in iter_extract(path, options=options):
            if isinstance(item, ExtractionFailure):
                failed += 1
                if json_out:
                    typer.echo(json.dumps({"source": item.source, "error": item.reason}, ensure_ascii=False))
                elif failed <= TABLE_ROWS:
                    failures.append(item)
                continue
            documents += 1
            if item.format == "sql":
                columns[f"{item.source.rsplit(':', 1)[0]}: {_sql_choice(item)}"] += 1
            if json_out:
                typer.echo(json.dumps(_as_json(item), ensure_ascii=False))
            elif documents <= TABLE_ROWS:
                _add_row(table, item)
    if not json_out:
        console.print(table)
        if documents > TABLE_ROWS:
            console.print(f"… and {documents - TABLE_ROWS:,} more documents")
        if columns:
            chosen = Table(title="SQL dump tables: the text columns read")
            chosen.add_column("table: columns (how chosen)", overflow="fold")
            chosen.add_column("rows", justify="right")
            for name, count in columns.items():
                chosen.add_row(safe(name), f"{count:,}")
            console.print(chosen)
    _print_failures(failures, failed, documents)
    if failed:
        raise typer.Exit(1)


def _sql_choice(document: ExtractedDocument) -> str:
    meta = document.metadata
    return f"{meta.get('text_columns', '')} ({meta.get('text_column_rule', '')})"


def _as_json(document: ExtractedDocument) -> dict[str, object]:
    return {
        "source": document.source,
        "format": document.format,
        "title": document.title,
        "text": document.text,
        "byte_size": document.byte_size,
        "sha256": document.sha256,
        "metadata": document.metadata,
    }


def _document_table() -> Table:
    table = Table(title="documents")
    table.add_column("source", overflow="fold")
    table.add_column("format")
    table.add_column("title", overflow="ellipsis", max_width=40)
    table.add_column("characters", justify="right")
    table.add_column("bytes", justify="right")
    return table


def _add_row(table: Table, document: ExtractedDocument) -> None:
    table.add_row(
        safe(document.source),
        document.format,
        safe(document.title or ""),
        f"{len(document.text):,}",
        f"{document.byte_size:,}",
    )


def _print_failures(failures: list[ExtractionFailure], failed: int, documents: int) -> None:
    if failures:
        table = Table(title="could not be read")
        table.add_column("source", overflow="fold")
        table.add_column("reason", overflow="fold")
        for failure in failures:
            table.add_row(safe(failure.source), safe(failure.reason))
        _errors.print(table)
    if failed > len(failures) and failures:
        _errors.print(f"… and {failed - len(failures):,} more failures")
    verdict = f"{documents:,} documents, {failed:,} failures"
    _errors.print(verdict if documents else f"error: nothing could be read ({verdict})")
