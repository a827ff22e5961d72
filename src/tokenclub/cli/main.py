"""Entry point: wires the command groups together and turns known errors into one-line exits."""

from __future__ import annotations

import typer

from tokenclub.cli import (
    accounts_cmd,
    dedup_cmd,
    export_cmd,
    guard_cmd,
    ingest_cmd,
    ledger_cmd,
    model_cmd,
    settlement_cmd,
    tokenizer_cmd,
    user_cmd,
)
from tokenclub.cli.extract_cmd import extract_command
from tokenclub.cli.output import JSON_OPTION, emit
from tokenclub.cli.portal_cmd import portal_command
from tokenclub.cli.serve_cmd import serve_command
from tokenclub.cli.worker_cmd import worker_command
from tokenclub.errors import TokenclubError
from tokenclub.home import init_home
from tokenclub.settings import get_settings

app = typer.Typer(
    name="tokenclub",
    help="Run a data cooperative that trains a Korean LLM.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(accounts_cmd.partner_app, name="partner")
app.add_typer(accounts_cmd.customer_app, name="customer")
app.add_typer(accounts_cmd.key_app, name="key")
app.add_typer(ledger_cmd.ledger_app, name="ledger")
app.command("balance")(ledger_cmd.balance)
app.command("usage")(ledger_cmd.usage)
app.command("extract")(extract_command)
app.command("ingest")(ingest_cmd.ingest_command)
app.command("serve")(serve_command)
app.command("worker")(worker_command)
app.command("portal")(portal_command)
app.add_typer(ingest_cmd.corpus_app, name="corpus")
app.add_typer(dedup_cmd.dedup_app, name="dedup")
app.add_typer(tokenizer_cmd.tokenizer_app, name="tokenizer")
app.add_typer(settlement_cmd.period_app, name="period")
app.add_typer(settlement_cmd.revenue_app, name="revenue")
app.add_typer(settlement_cmd.cost_app, name="cost")
app.command("settle")(settlement_cmd.settle)
app.command("statement")(settlement_cmd.statement)
app.add_typer(guard_cmd.guard_app, name="guard")
app.add_typer(guard_cmd.audit_app, name="audit")
app.add_typer(export_cmd.export_app, name="export")
app.add_typer(model_cmd.model_app, name="model")
app.add_typer(user_cmd.user_app, name="user")


@app.command()
def init(json_out: bool = JSON_OPTION) -> None:
    """Create the home folder and the database, or bring them up to date (idempotent)."""
    result = init_home(get_settings())
    emit(
        {"home": result.home, "database": result.database, "revision": result.revision}, json_out, "tokenclub"
    )


def main() -> None:
    """Run the CLI; a known error becomes `error: <reason>` on stderr and exit status 1."""
    try:
        app()
    except TokenclubError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise SystemExit(1) from None
