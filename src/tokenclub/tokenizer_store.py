"""Which tokenizer counts credited tokens: the configured file, or the one shipped with tokenclub."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from tokenclub.errors import InvalidInputError
from tokenclub.settings import Settings

DEFAULT_TOKENIZER_NAME = "ko-bpe-32k.json"


def default_tokenizer_path() -> Path:
    """The 32k Korean byte-level BPE that `tokenclub tokenizer train --default` reproduces."""
    return Path(str(files("tokenclub") / "data" / DEFAULT_TOKENIZER_NAME))


def resolve_tokenizer(settings: Settings) -> Path:
    path = settings.tokenizer_path or default_tokenizer_path()
    if not path.is_file():
        raise InvalidInputError(f"tokenizer file {path} does not exist (TOKENCLUB_TOKENIZER_PATH)")
    return path.resolve()
