"""Entry point: the command registry, and known errors turned into one-line exits.

The CLI must start at once (`tokenclub --help` in well under half a second), so no command
module is imported until its command runs. Each command is one row of `COMMANDS`: its name,
where it lives (`"module:attribute"`, a `typer.Typer` group or a plain command function) and
the one line `--help` lists for it. To add a command, write it in its own `cli/*_cmd.py` module
and add a row here; never import a command module at the top of this file. Keep heavy imports
(pyarrow, numpy, httpx, tokenizers, fastapi, sqlalchemy, …) out of this module and of
`cli/output.py`, which every command imports; `tests/cli/test_main.py` checks that `--help`
loads none of them (`python -X importtime -m tokenclub.cli.main --help` shows what does).
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any, NamedTuple

import typer
from typer.core import TyperCommand, TyperGroup

from tokenclub.cli.output import JSON_OPTION, emit
from tokenclub.errors import TokenclubError


class Lazy(NamedTuple):
    """A command imported only when it runs; `help` is its line in the listing."""

    target: str
    help: str


COMMANDS: dict[str, Lazy] = {
    "partner": Lazy("tokenclub.cli.accounts_cmd:partner_app", "Partner applications and decisions."),
    "customer": Lazy("tokenclub.cli.accounts_cmd:customer_app", "Customer accounts that use the API."),
    "key": Lazy("tokenclub.cli.accounts_cmd:key_app", "API keys: create, list, revoke."),
    "ledger": Lazy("tokenclub.cli.ledger_cmd:ledger_app", "Ledger checks."),
    "balance": Lazy(
        "tokenclub.cli.ledger_cmd:balance", "Free tokens granted, used and left, paid tokens, KRW due."
    ),
    "usage": Lazy("tokenclub.cli.ledger_cmd:usage", "API usage events of one account."),
    "extract": Lazy("tokenclub.cli.extract_cmd:extract_command", "Read files as an upload would be read."),
    "ingest": Lazy("tokenclub.cli.ingest_cmd:ingest_command", "Ingest an upload and print its receipt."),
    "serve": Lazy("tokenclub.cli.serve_cmd:serve_command", "Serve the OpenAI-compatible API."),
    "corpus": Lazy("tokenclub.cli.ingest_cmd:corpus_app", "The accepted corpus (operator view)."),
    "dedup": Lazy("tokenclub.cli.dedup_cmd:dedup_app", "Near-duplicate removal over a whole corpus."),
    "tokenizer": Lazy(
        "tokenclub.cli.tokenizer_cmd:tokenizer_app", "The tokenizer that counts credited tokens."
    ),
    "period": Lazy("tokenclub.cli.settlement_cmd:period_app", "Settlement periods: open and list."),
    "revenue": Lazy(
        "tokenclub.cli.settlement_cmd:revenue_app", "Revenue recorded by hand for a period: add, list, void."
    ),
    "cost": Lazy(
        "tokenclub.cli.settlement_cmd:cost_app", "Costs recorded by hand for a period: add, list, void."
    ),
    "settle": Lazy("tokenclub.cli.settlement_cmd:settle", "Close a period and post its payouts."),
    "statement": Lazy(
        "tokenclub.cli.settlement_cmd:statement", "One partner's statement for a closed period."
    ),
    "guard": Lazy(
        "tokenclub.cli.guard_cmd:guard_app", "The leak guard: its index, checks and stopped attempts."
    ),
    "audit": Lazy("tokenclub.cli.audit_cmd:audit_app", "Measure what a model gives back of the corpus."),
    "export": Lazy("tokenclub.cli.export_cmd:export_app", "Training exports: snapshots, shards, downloads."),
    "model": Lazy("tokenclub.cli.model_cmd:model_app", "Models trained on snapshots, and what serves them."),
    "user": Lazy("tokenclub.cli.user_cmd:user_app", "Portal users: add, list, reset passwords."),
    "worker": Lazy(
        "tokenclub.cli.worker_cmd:worker_command", "Drain the ingest queue of uploaded contributions."
    ),
    "portal": Lazy("tokenclub.cli.portal_cmd:portal_command", "Serve the partner portal and the data API."),
    "keys": Lazy("tokenclub.cli.keys_cmd:keys_app", "Encryption keys of the stores: rotate the master key."),
}


def load_command(name: str, lazy: Lazy) -> Any:
    """Import a registered command's module and build its command object under `name`."""
    module, _, attribute = lazy.target.partition(":")
    target = getattr(importlib.import_module(module), attribute)
    if isinstance(target, typer.Typer):
        command: Any = typer.main.get_group(target)
    else:
        single = typer.Typer(add_completion=False)  # as the root: no completion options per command
        single.command(name)(target)
        command = typer.main.get_command(single)
    command.name = name
    _one_line_rows(command)
    return command


def _one_line_rows(command: Any) -> None:
    """Each subcommand's row in a group's listing as one line: typer lists a docstring's first
    paragraph with its line breaks, so a sentence wrapped in the source broke mid-row."""
    for sub in getattr(command, "commands", {}).values():
        if sub.short_help is None and sub.help:
            sub.short_help = " ".join(inspect.cleandoc(sub.help).split("\n\n")[0].split())
        _one_line_rows(sub)


class LazyGroup(TyperGroup):
    """The root group: registered commands appear in `--help` from their row alone and are
    imported when they are resolved to run (or to print their own help).

    Contexts and commands are typed `Any`: typer ships its own copy of click, whose classes are
    not part of its public names."""

    def list_commands(self, ctx: Any) -> list[str]:
        return [*COMMANDS, *(name for name in super().list_commands(ctx) if name not in COMMANDS)]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        lazy = COMMANDS.get(cmd_name)
        if lazy is None or cmd_name in self.commands:
            return super().get_command(ctx, cmd_name)
        return TyperCommand(cmd_name, help=lazy.help, short_help=lazy.help)

    def resolve_command(self, ctx: Any, args: list[str]) -> tuple[str | None, Any, list[str]]:
        name, command, rest = super().resolve_command(ctx, args)
        if name in COMMANDS and name not in self.commands:
            command = load_command(name, COMMANDS[name])
            self.add_command(command, name)
        return name, command, rest


app = typer.Typer(
    name="tokenclub",
    cls=LazyGroup,
    help="Run a data cooperative that trains a Korean LLM.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def _root() -> None:
    """Keeps the root a group of commands (typer collapses a one-command app into the command)."""


@app.command()
def init(json_out: bool = JSON_OPTION) -> None:
    """Create the home folder and the database, or bring them up to date (idempotent)."""
    from tokenclub.home import init_home
    from tokenclub.settings import get_settings

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


if __name__ == "__main__":
    main()
