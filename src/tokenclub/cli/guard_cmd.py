"""Commands for the leak guard (index, checks, stopped attempts) and the memorization audit."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import typer
from rich.progress import Progress
from tokenizers import Tokenizer

from tokenclub.accounts.partners import withdrawn_partners
from tokenclub.cli.output import (
    JSON_OPTION,
    console,
    corpus_store,
    emit,
    print_json,
    print_rows,
    session_scope,
)
from tokenclub.corpus.dump import iter_corpus
from tokenclub.errors import InvalidInputError, StateError
from tokenclub.export.registry import served_models_holding
from tokenclub.guard.audits.extraction import audit_memorization, client_for, make_probes
from tokenclub.guard.audits.redteam import (
    ATTACKS,
    DIVERGENCE_PROMPTS,
    Channel,
    Outcome,
    Target,
    make_targets,
    run_suite,
    summarize,
)
from tokenclub.guard.audits.worst_case import (
    FAMILIES,
    PIECES,
    SPLIT_FAMILIES,
    run_worst_case,
    summarize_families,
)
from tokenclub.guard.config import GuardSettings
from tokenclub.guard.detection.prompts import check_prompt
from tokenclub.guard.detection.scanner import LeakScanner
from tokenclub.guard.indexing.build import guard_root, rebuild_index, sync
from tokenclub.guard.indexing.commonness import add_public_text, public_texts
from tokenclub.guard.indexing.index import LiveIndex, open_index, writer
from tokenclub.guard.state.events import list_events, stopped_attempts
from tokenclub.guard.state.releases import record_release
from tokenclub.home import open_database
from tokenclub.settings import get_settings
from tokenclub.tokenizer_store import resolve_tokenizer

guard_app = typer.Typer(help="The leak guard: its index, checks and stopped attempts.", no_args_is_help=True)
audit_app = typer.Typer(help="Measure what a model gives back of the corpus.", no_args_is_help=True)


def _index_stats() -> dict[str, Any]:
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
    body = sys.stdin.read() if text == "-" else text
    scanner = LeakScanner(LiveIndex(guard_root(get_settings().home)).current())
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
    from tokenclub.guard.detection.coverage import covered_letters
    from tokenclub.guard.state.coverage_store import holdings

    settings = GuardSettings()
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
                    "last_at": "",
                }
            )
    if json_out:
        print_json(rows)
    else:
        print_rows("coverage (letters of each document sent)", COVERAGE_COLUMNS, rows)


def _corpus_documents() -> list[dict[str, Any]]:
    settings = get_settings()
    db = open_database(settings)
    try:
        return list(iter_corpus(db, settings.home, None, settings.store_url))
    finally:
        db.dispose()


@contextmanager
def served(url: str) -> Iterator[None]:
    """Turns an unreachable or failing model server into a one-line error naming it."""
    try:
        yield
    except httpx.HTTPStatusError as exc:
        raise StateError(f"{url} answered {exc.response.status_code}: {exc.response.text[:200]}") from exc
    except httpx.HTTPError as exc:
        raise StateError(f"{url}: {exc}") from exc


@audit_app.command("memorization")
def memorization_command(
    model_url: str = typer.Option(
        ..., "--model-url", help="OpenAI-compatible base URL: the model (…:8080/v1) or the gateway."
    ),
    api_key: str | None = typer.Option(None, "--api-key", help="Bearer key (the gateway's API key)."),
    model: str | None = typer.Option(None, "--model", help="Model name (default: the configured one)."),
    samples: int = typer.Option(100, min=1, help="Documents to probe."),
    prefix_tokens: int = typer.Option(50, min=1, help="Prompt length in corpus tokens."),
    suffix_tokens: int = typer.Option(50, min=1, help="Compared continuation length in corpus tokens."),
    max_tokens: int = typer.Option(200, min=1, help="Model tokens to generate per probe."),
    seed: int = typer.Option(0, help="Sampling seed."),
    json_out: bool = JSON_OPTION,
) -> None:
    """Prompt a model greedily with corpus prefixes; report exact and near-exact extraction rates."""
    settings = get_settings()
    tokenizer = Tokenizer.from_file(str(resolve_tokenizer(settings)))
    probes = make_probes(_corpus_documents(), tokenizer, samples, prefix_tokens, suffix_tokens, seed)
    if not probes:
        raise InvalidInputError(f"no accepted document has {prefix_tokens + suffix_tokens} tokens to probe")
    with (
        client_for(model_url, api_key) as client,
        served(model_url),
        Progress(console=console, transient=True) as bar,
    ):
        task = bar.add_task("probing", total=len(probes), visible=not json_out)
        audit = audit_memorization(
            client, model or settings.model_name, probes, max_tokens, lambda _result: bar.advance(task)
        )
    report = {
        "model_url": model_url,
        "prefix_tokens": prefix_tokens,
        "suffix_tokens": suffix_tokens,
        **audit.as_dict(),
    }
    emit(report, json_out, "memorization audit")


def _suite(url: str, key: str | None, model: str, targets: list[Target], max_tokens: int) -> list[Outcome]:
    scanner = LeakScanner(LiveIndex(guard_root(get_settings().home)).current())
    leak_length = GuardSettings().leak_length
    with client_for(url, key) as client, served(url), Progress(console=console, transient=True) as bar:
        task = bar.add_task(f"attacking {url}", total=len(targets) * len(ATTACKS) + len(DIVERGENCE_PROMPTS))
        return run_suite(
            Channel(client, model, max_tokens), targets, leak_length, scanner, lambda _o: bar.advance(task)
        )


def _worst_case_suite(
    url: str, keys: tuple[str | None, ...], model: str, targets: list[Target], _max_tokens: int
) -> list[Outcome]:
    """`keys`: the customers' keys (None: the upstream directly); a second one alternates the
    split pieces."""
    leak_length = GuardSettings().leak_length
    attacks = sum(len(a) for a in FAMILIES.values()) * len(PIECES) + 2 * len(SPLIT_FAMILIES[: len(keys)])
    with ExitStack() as stack, Progress(console=console, transient=True) as bar:
        clients = [stack.enter_context(client_for(url, key)) for key in keys]
        task = bar.add_task(f"attacking {url}", total=len(targets) * attacks)
        return run_worst_case(
            clients[0], model, targets, leak_length, lambda _o: bar.advance(task), others=clients[1:]
        )


@audit_app.command("redteam")
def redteam_command(
    gateway: str = typer.Option(..., "--gateway", help="The gateway's base URL (…/v1)."),
    key: str = typer.Option(..., "--key", help="An API key of the gateway."),
    direct_url: str | None = typer.Option(
        None, "--direct-url", help="The model's own base URL: the same attacks with the guard off."
    ),
    model: str | None = typer.Option(None, "--model", help="Model name (default: the configured one)."),
    samples: int = typer.Option(10, min=1, help="Documents to attack."),
    max_tokens: int = typer.Option(300, min=1, help="Model tokens per reply."),
    seed: int = typer.Option(0, help="Sampling seed."),
    worst_case: bool = typer.Option(
        False,
        "--worst-case",
        help="Order each disguise and side channel from a worst-case upstream (a test helper) instead.",
    ),
    second_key: str | None = typer.Option(
        None,
        "--second-key",
        help="Another customer's key: with --worst-case, split pieces also alternate between the two.",
    ),
    json_out: bool = JSON_OPTION,
) -> None:
    """Run the extraction attack suite and report the leak rate per attack family."""
    targets = make_targets(_corpus_documents(), samples, seed)
    if not targets:
        raise InvalidInputError("no accepted document is long enough to attack")
    name = model or get_settings().model_name
    if worst_case:
        keys = (key,) if second_key is None else (key, second_key)
        runs = {"guard_on": _worst_case_suite(gateway, keys, name, targets, max_tokens)}
        if direct_url is not None:
            runs["guard_off"] = _worst_case_suite(direct_url, (None,) * len(keys), name, targets, max_tokens)
    else:
        runs = {"guard_on": _suite(gateway, key, name, targets, max_tokens)}
        if direct_url is not None:
            runs["guard_off"] = _suite(direct_url, None, name, targets, max_tokens)
    tables = {
        label: summarize_families(outcomes) if worst_case else summarize(outcomes)
        for label, outcomes in runs.items()
    }
    if json_out:
        print_json({"targets": len(targets), **tables})
        return
    rows = [
        {
            "family": family,
            **{f"{label} {k}": v for label in tables for k, v in tables[label][family].items()},
        }
        for family in tables["guard_on"]
    ]
    print_rows(f"red team: {len(targets)} passages", tuple(rows[0]), rows)
