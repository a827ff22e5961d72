"""Commands for the leak guard: its index, public text, checks, stopped attempts and coverage.

The guard's modules (NumPy, Arrow) are imported inside each command, so that `tokenclub guard
--help` starts at once.
"""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer

from tokenclub.cli.output import JSON_OPTION, corpus_store, emit, print_json, print_rows, session_scope
from tokenclub.errors import InvalidInputError, StateError
from tokenclub.settings import get_settings

guard_app = typer.Typer(help="The leak guard: its index, checks and stopped attempts.", no_args_is_help=True)


def _index_stats() -> dict[str, Any]:
    from tokenclub.guard.indexing.index import LiveIndex
    from tokenclub.guard.indexing.parts import guard_root

    index = LiveIndex(guard_root(get_settings().home)).current()
    if index is None:
        raise InvalidInputError("no guard index yet; ingest data or run `tokenclub guard rebuild`")
    return index.stats()


@guard_app.command("rebuild")
def rebuild_command(
    withdrawn: list[int] = typer.Option(
        [], "--exclude-partner", help="Partner whose text leaves the index (repeat for several)."
    ),
    json_out: bool = JSON_OPTION,
) -> None:
    """Rebuild the index from the accepted corpus, leaving out the partners named (withdrawal)."""
    from tokenclub.guard.indexing.build import rebuild_index
    from tokenclub.home import open_database

    settings = get_settings()
    db = open_database(settings)
    started = time.perf_counter()
    try:
        rebuild_index(db, settings.home, corpus_store(), withdrawn)
    finally:
        db.dispose()
    stats = _index_stats()
    stats["seconds"] = round(time.perf_counter() - started, 3)
    emit(stats, json_out, "guard index rebuilt")


@guard_app.command("release")
def release_command(
    partner: int = typer.Option(
        ..., "--partner", help="The withdrawn partner whose text may leave the index."
    ),
    json_out: bool = JSON_OPTION,
) -> None:
    """Release a withdrawn partner's text from the guard (once no served model saw it): the
    index is rebuilt without it, and every later rebuild leaves it out."""
    from tokenclub.accounts.partners import withdrawn_partners
    from tokenclub.export.registry import served_models_holding
    from tokenclub.guard.indexing.build import rebuild_index
    from tokenclub.guard.indexing.parts import guard_root
    from tokenclub.guard.state.releases import record_release
    from tokenclub.home import open_database

    settings = get_settings()
    with session_scope() as session:
        if partner not in withdrawn_partners(session):
            raise InvalidInputError(
                f"partner {partner} has not withdrawn: only a withdrawn partner's text can be released"
            )
        if serving := served_models_holding(session, partner):
            raise StateError(
                f"partner {partner}'s text is in the snapshot of served model(s) {', '.join(serving)}: "
                "retire them first (`tokenclub model retire`)"
            )
    released = record_release(guard_root(settings.home), partner)
    db = open_database(settings)
    try:
        rebuild_index(db, settings.home, corpus_store())
    finally:
        db.dispose()
    stats = _index_stats()
    stats["released"] = sorted(released)
    emit(stats, json_out, f"partner {partner} released from the guard index")


public_app = typer.Typer(
    help="Public text (laws, the constitution) that is never a leak.", no_args_is_help=True
)
guard_app.add_typer(public_app, name="public")


@public_app.command("add")
def public_add_command(
    files: list[Path] = typer.Argument(..., help="UTF-8 text files of public text."),
    json_out: bool = JSON_OPTION,
) -> None:
    """Load public text: its grams stop counting toward a leak in the live index and every rebuild."""
    from tokenclub.guard.indexing.commonness import add_public_text, public_texts
    from tokenclub.guard.indexing.index import open_index, writer
    from tokenclub.guard.indexing.parts import guard_root

    texts: list[tuple[Path, str]] = []
    for path in files:
        try:
            texts.append((path, path.read_text(encoding="utf-8")))
        except FileNotFoundError as exc:
            raise InvalidInputError(f"{path}: no such file") from exc
        except UnicodeDecodeError as exc:
            raise InvalidInputError(f"{path}: not UTF-8 text (byte {exc.start})") from exc
        except IsADirectoryError as exc:
            raise InvalidInputError(f"{path}: is a directory, not a text file") from exc
    root = guard_root(get_settings().home)
    for path, text in texts:
        if not text.strip():
            raise InvalidInputError(f"{path}: empty file")
    for _, text in texts:
        add_public_text(root, text)
    out: dict[str, Any] = {"files": len(texts), "public_files": len(public_texts(root)), "grams": 0}
    if open_index(root) is not None:
        with writer(root) as index:
            out["grams"] = index.set_public(public_texts(root))
    emit(out, json_out, "public text loaded")


@guard_app.command("sync")
def sync_command(json_out: bool = JSON_OPTION) -> None:
    """Index committed corpus batches that the index lacks (after a crash mid-ingest)."""
    from tokenclub.guard.indexing.build import sync
    from tokenclub.home import open_database

    settings = get_settings()
    db = open_database(settings)
    try:
        added = sync(db, settings.home, corpus_store())
    finally:
        db.dispose()
    emit({"parts_indexed": added}, json_out, "guard sync")


@guard_app.command("stats")
def stats_command(json_out: bool = JSON_OPTION) -> None:
    """Size, load and parameters of the live index."""
    emit(_index_stats(), json_out, "guard index")


@guard_app.command("check")
def check_command(
    text: str = typer.Argument(..., help="Text to check; '-' reads standard input."),
    prompt: bool = typer.Option(False, "--prompt", help="Check as a prompt (extraction attempts too)."),
    strict: bool = typer.Option(False, "--strict", help="Use the stricter threshold."),
    json_out: bool = JSON_OPTION,
) -> None:
    """Would the guard stop this text? Prints the verdict, matched letters and partner."""
    from tokenclub.guard.config import guard_settings
    from tokenclub.guard.detection.prompts import check_prompt
    from tokenclub.guard.detection.scanner import LeakScanner
    from tokenclub.guard.indexing.index import LiveIndex
    from tokenclub.guard.indexing.parts import guard_root

    body = sys.stdin.read() if text == "-" else text
    leak_letters = guard_settings().leak_letters
    scanner = LeakScanner(LiveIndex(guard_root(get_settings().home)).current(), leak_letters=leak_letters)
    result = scanner.inspect(body, strict)
    report: dict[str, Any] = {
        "verdict": result.verdict,
        "matched_length": result.matched_length,
        "partner_id": result.partner_id,
        "spans": [[s.start, s.end] for s in result.spans],
        "redacted": result.redacted,
    }
    if prompt:
        verdict = check_prompt(body, scanner)
        report["prompt_verdict"] = verdict.verdict
        report["reasons"] = list(verdict.reasons)
    emit(report, json_out, "guard check")


@guard_app.command("stopped")
def stopped_command(
    partner: int | None = typer.Option(None, "--partner", help="Only this partner's count."),
    json_out: bool = JSON_OPTION,
) -> None:
    """Attempts on each partner's text that the guard stopped (blocked, redacted or refused)."""
    from tokenclub.guard.state.events import stopped_attempts

    with session_scope() as session:
        counts = stopped_attempts(session, partner)
    rows = [
        {"partner_id": p, "stopped": n}
        for p, n in sorted(counts.items(), key=lambda kv: (kv[0] is None, kv[0]))
    ]
    if partner is not None and not rows:
        rows = [{"partner_id": partner, "stopped": 0}]
    if json_out:
        print_json(rows)
    else:
        print_rows("stopped attempts", ("partner_id", "stopped"), rows)


EVENT_COLUMNS = ("id", "created_at", "key_id", "stage", "verdict", "action", "matched_length", "partner_id")


@guard_app.command("events")
def events_command(
    partner: int | None = typer.Option(None, "--partner", help="Only events on this partner's text."),
    since: datetime | None = typer.Option(
        None, "--since", help="Only events at or after this time (ISO 8601, UTC if no zone)."
    ),
    limit: int = typer.Option(100, "--limit", min=1, max=100_000, help="At most this many, newest first."),
    json_out: bool = JSON_OPTION,
) -> None:
    """Every guard decision, newest first (the operator's view; a partner sees only its counts)."""
    from tokenclub.guard.state.events import list_events

    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    with session_scope() as session:
        rows = list_events(session, partner, since, limit)
    if json_out:
        print_json(rows)
    else:
        print_rows("guard events", EVENT_COLUMNS, rows)


COVERAGE_COLUMNS = (
    "customer_id",
    "document",
    "partner_id",
    "grams",
    "letters",
    "document_letters",
    "share",
    "limit",
    "blocked",
    "last_at",
)


@guard_app.command("coverage")
def coverage_command(
    document: int | None = typer.Option(
        None, "--document", help="Only this document (its number in the index)."
    ),
    customer: int | None = typer.Option(None, "--customer", help="Only this customer."),
    json_out: bool = JSON_OPTION,
) -> None:
    """Who was sent how much of which contributed document within the coverage window, and the
    union of all customers per document (the operator's view of collection in pieces)."""
    from tokenclub.guard.config import guard_settings
    from tokenclub.guard.detection.coverage import covered_letters
    from tokenclub.guard.indexing.index import open_index
    from tokenclub.guard.indexing.parts import guard_root
    from tokenclub.guard.state.coverage_store import holdings
    from tokenclub.guard.state.events import STRIKES, blocks_by_document

    settings = guard_settings()
    limits = settings.limits()
    if limits is None:
        raise StateError("coverage is off (TOKENCLUB_GUARD_COVERAGE_CUSTOMER=0)")
    index = open_index(guard_root(get_settings().home))
    if index is None:
        raise StateError("no guard index yet: nothing is protected, nothing collected")
    if document is not None and not 0 <= document < len(index.docs.documents):
        raise InvalidInputError(
            f"--document {document}: the index holds documents 0 to {len(index.docs.documents) - 1}"
        )
    since = int(time.time()) - limits.window_s
    with session_scope() as session:
        held = holdings(session, index.folder.name, since, customer, document)
        blocks = blocks_by_document(session, STRIKES, datetime.fromtimestamp(since, UTC), customer)
    rows: list[dict[str, Any]] = []
    union: dict[int, set[int]] = {}
    for h in held:
        letters = index.docs.letters(h.doc)
        got = covered_letters(h.ordinals, index.params, letters)
        union.setdefault(h.doc, set()).update(h.ordinals)
        rows.append(
            {
                "customer_id": h.customer_id,
                "document": h.doc,
                "partner_id": h.partner_id,
                "grams": len(h.ordinals),
                "letters": got,
                "document_letters": letters,
                "share": round(got / letters, 4) if letters else None,
                "limit": limits.customer_letters(letters),
                "blocked": blocks.get((h.customer_id, h.doc), 0),
                "last_at": datetime.fromtimestamp(h.last_s, UTC).isoformat(timespec="seconds"),
            }
        )
    if customer is None:
        for doc, ordinals in sorted(union.items()):
            letters = index.docs.letters(doc)
            got = covered_letters(ordinals, index.params, letters)
            rows.append(
                {
                    "customer_id": "all",
                    "document": doc,
                    "partner_id": index.docs.partner(doc),
                    "grams": len(ordinals),
                    "letters": got,
                    "document_letters": letters,
                    "share": round(got / letters, 4) if letters else None,
                    "limit": limits.document_letters(letters),
                    "blocked": sum(n for (_, place), n in blocks.items() if place == doc),
                    "last_at": "",
                }
            )
    if json_out:
        print_json(rows)
    else:
        print_rows("coverage (letters of each document sent)", COVERAGE_COLUMNS, rows)
