"""Commands for the leak guard (index, checks, stopped attempts) and the memorization audit."""

from __future__ import annotations

import sys
import time
from typing import Any

import typer
from rich.progress import Progress
from tokenizers import Tokenizer

from tokenclub.cli.output import (
    JSON_OPTION,
    console,
    emit,
    print_json,
    print_record,
    print_rows,
    session_scope,
)
from tokenclub.corpus.dump import iter_corpus
from tokenclub.corpus.store import CorpusStore
from tokenclub.errors import InvalidInputError
from tokenclub.guard.audit import audit_memorization, client_for, make_probes
from tokenclub.guard.events import stopped_attempts
from tokenclub.guard.index import LiveIndex
from tokenclub.guard.indexing import guard_root, rebuild_index, sync
from tokenclub.guard.prompts import check_prompt
from tokenclub.guard.scanner import LeakScanner
from tokenclub.home import open_database
from tokenclub.settings import get_settings
from tokenclub.storage import store_child
from tokenclub.tokenizer_store import resolve_tokenizer

guard_app = typer.Typer(help="The leak guard: its index, checks and stopped attempts.", no_args_is_help=True)
audit_app = typer.Typer(help="Measure what a model gives back of the corpus.", no_args_is_help=True)


def _index_stats() -> dict[str, Any]:
    index = LiveIndex(guard_root(get_settings().home)).current()
    if index is None:
        raise InvalidInputError("no guard index yet; ingest data or run `tokenclub guard rebuild`")
    return index.stats()


def _corpus_store() -> CorpusStore:
    settings = get_settings()
    return CorpusStore(store_child(settings.home, settings.store_url, "corpus"))


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
        rebuild_index(db, settings.home, _corpus_store(), withdrawn)
    finally:
        db.dispose()
    stats = _index_stats()
    stats["seconds"] = round(time.perf_counter() - started, 3)
    emit(stats, json_out, "guard index rebuilt")


@guard_app.command("sync")
def sync_command(json_out: bool = JSON_OPTION) -> None:
    """Index committed corpus batches that the index lacks (after a crash mid-ingest)."""
    settings = get_settings()
    db = open_database(settings)
    try:
        added = sync(db, settings.home, _corpus_store())
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
    result = scanner.scan(body, strict)
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


@audit_app.command("memorization")
def memorization_command(
    model_url: str = typer.Option(
        ..., "--model-url", help="OpenAI-compatible base URL, e.g. http://127.0.0.1:8080/v1"
    ),
    via_gateway_key: str | None = typer.Option(
        None, "--via-gateway-key", help="API key: --model-url is the tokenclub gateway."
    ),
    model: str | None = typer.Option(None, "--model", help="Model name (default: the configured one)."),
    samples: int = typer.Option(100, min=1, help="Documents to probe."),
    prefix_tokens: int = typer.Option(50, min=1, help="Prompt length in corpus tokens."),
    suffix_tokens: int = typer.Option(50, min=1, help="Compared continuation length in corpus tokens."),
    max_tokens: int = typer.Option(200, min=1, help="Model tokens to generate."),
    seed: int = typer.Option(0, help="Sampling seed."),
    json_out: bool = JSON_OPTION,
) -> None:
    """Prompt a model with corpus prefixes and report exact and near-exact extraction rates."""
    settings = get_settings()
    tokenizer = Tokenizer.from_file(str(resolve_tokenizer(settings)))
    db = open_database(settings)
    try:
        probes = make_probes(
            iter_corpus(db, settings.home, None, settings.store_url),
            tokenizer,
            samples,
            prefix_tokens,
            suffix_tokens,
            seed,
        )
    finally:
        db.dispose()
    if not probes:
        raise InvalidInputError(f"no accepted document has {prefix_tokens + suffix_tokens} tokens to probe")
    with client_for(model_url, via_gateway_key) as client, Progress(console=console, transient=True) as bar:
        task = bar.add_task("probing", total=len(probes), visible=not json_out)
        audit = audit_memorization(
            client, model or settings.model_name, probes, max_tokens, lambda _result: bar.advance(task)
        )
    report = {"model_url": model_url, "via_gateway": via_gateway_key is not None, **audit.as_dict()}
    if json_out:
        print_json(report)
    else:
        print_record("memorization audit", report)
