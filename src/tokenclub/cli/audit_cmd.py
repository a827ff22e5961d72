"""The memorization audit and the red team: what a model, or the gateway in front of it, gives
back of the corpus. Their clients, tokenizer and guard modules are imported when they run."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import TYPE_CHECKING, Any

import typer

from tokenclub.cli.output import JSON_OPTION, console, emit, print_json, print_rows
from tokenclub.errors import InvalidInputError, StateError
from tokenclub.settings import get_settings

if TYPE_CHECKING:
    from tokenclub.guard.audits.redteam import Outcome, Target

audit_app = typer.Typer(help="Measure what a model gives back of the corpus.", no_args_is_help=True)


def _corpus_documents() -> list[dict[str, Any]]:
    from tokenclub.corpus.dump import iter_corpus
    from tokenclub.home import open_database

    settings = get_settings()
    db = open_database(settings)
    try:
        return list(iter_corpus(db, settings.home, None, settings.store_url))
    finally:
        db.dispose()


@contextmanager
def served(url: str) -> Iterator[None]:
    """Turns an unreachable or failing model server into a one-line error naming it."""
    import httpx

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
    from rich.progress import Progress
    from tokenizers import Tokenizer

    from tokenclub.guard.audits.extraction import audit_memorization, client_for, make_probes
    from tokenclub.tokenizer_store import resolve_tokenizer

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
    from rich.progress import Progress

    from tokenclub.guard.audits.extraction import client_for
    from tokenclub.guard.audits.redteam import ATTACKS, DIVERGENCE_PROMPTS, Channel, run_suite
    from tokenclub.guard.config import guard_settings
    from tokenclub.guard.detection.scanner import LeakScanner
    from tokenclub.guard.indexing.index import LiveIndex
    from tokenclub.guard.indexing.parts import guard_root

    settings = guard_settings()
    scanner = LeakScanner(
        LiveIndex(guard_root(get_settings().home)).current(), leak_letters=settings.leak_letters
    )
    leak_length, nfkc = settings.leak_letters or settings.leak_length, bool(settings.leak_letters)
    with client_for(url, key) as client, served(url), Progress(console=console, transient=True) as bar:
        task = bar.add_task(f"attacking {url}", total=len(targets) * len(ATTACKS) + len(DIVERGENCE_PROMPTS))
        return run_suite(
            Channel(client, model, max_tokens),
            targets,
            leak_length,
            scanner,
            lambda _o: bar.advance(task),
            nfkc,
        )


def _worst_case_suite(
    url: str, keys: tuple[str | None, ...], model: str, targets: list[Target], _max_tokens: int
) -> list[Outcome]:
    """`keys`: the customers' keys (None: the upstream directly); a second one alternates the
    split pieces."""
    from rich.progress import Progress

    from tokenclub.guard.audits.extraction import client_for
    from tokenclub.guard.audits.worst_case import FAMILIES, PIECES, SPLIT_FAMILIES, run_worst_case
    from tokenclub.guard.config import guard_settings

    settings = guard_settings()
    leak_length, nfkc = settings.leak_letters or settings.leak_length, bool(settings.leak_letters)
    attacks = sum(len(a) for a in FAMILIES.values()) * len(PIECES) + 2 * len(SPLIT_FAMILIES[: len(keys)])
    with ExitStack() as stack, Progress(console=console, transient=True) as bar:
        clients = [stack.enter_context(client_for(url, key)) for key in keys]
        task = bar.add_task(f"attacking {url}", total=len(targets) * attacks)
        return run_worst_case(
            clients[0],
            model,
            targets,
            leak_length,
            lambda _o: bar.advance(task),
            others=clients[1:],
            nfkc=nfkc,
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
    from tokenclub.guard.audits.redteam import make_targets, summarize
    from tokenclub.guard.audits.worst_case import summarize_families

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
