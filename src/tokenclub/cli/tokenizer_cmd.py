"""Commands for the pinned tokenizer that counts credited tokens."""

from __future__ import annotations

from pathlib import Path

import typer

from tokenclub.cli.output import JSON_OPTION, emit
from tokenclub.errors import InvalidInputError
from tokenclub.settings import get_settings
from tokenclub.tokenizer import (
    DEFAULT_VOCAB_SIZE,
    build_default_tokenizer,
    fingerprint,
    load_tokenizer,
    save_tokenizer,
    train_tokenizer,
)
from tokenclub.tokenizer_store import resolve_tokenizer

tokenizer_app = typer.Typer(help="The tokenizer that counts credited tokens.", no_args_is_help=True)


def _text_lines(paths: list[Path]) -> list[str]:
    lines: list[str] = []
    for path in paths:
        try:
            lines.extend(line for line in path.read_text(encoding="utf-8").splitlines() if line.strip())
        except (OSError, UnicodeDecodeError) as exc:
            raise InvalidInputError(f"{path}: cannot read as UTF-8 text ({exc})") from exc
    if not lines:
        raise InvalidInputError("no training text in the given files")
    return lines


@tokenizer_app.command("show")
def show(json_out: bool = JSON_OPTION) -> None:
    """The configured tokenizer: path, vocabulary size and fingerprint."""
    path = resolve_tokenizer(get_settings())
    tokenizer = load_tokenizer(path)
    emit(
        {"path": str(path), "vocab_size": tokenizer.get_vocab_size(), "fingerprint": fingerprint(path)},
        json_out,
        "tokenizer",
    )


@tokenizer_app.command("train")
def train(
    files: list[Path] = typer.Argument(None, help="UTF-8 text files, one training text per line."),
    out: Path = typer.Option(..., "--out", help="Where to write tokenizer.json."),
    vocab_size: int = typer.Option(DEFAULT_VOCAB_SIZE, "--vocab-size", min=300),
    default: bool = typer.Option(
        False, "--default", help="Rebuild the shipped default from the open corpus."
    ),
    corpora: Path = typer.Option(Path("../shared/corpora"), help="Open corpus root, for --default."),
    json_out: bool = JSON_OPTION,
) -> None:
    """Train a byte-level BPE; training is deterministic, so the same input gives the same file."""
    if default == bool(files):
        raise InvalidInputError("give training files or --default, not both and not neither")
    if default:
        digest = build_default_tokenizer(corpora, out)
    else:
        digest = save_tokenizer(train_tokenizer(_text_lines(files), vocab_size), out)
    emit(
        {"path": str(out), "vocab_size": load_tokenizer(out).get_vocab_size(), "fingerprint": digest},
        json_out,
        "tokenizer",
    )
