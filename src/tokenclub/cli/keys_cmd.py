"""`tokenclub keys`: the master key that wraps the data keys of the raw and corpus stores."""

from __future__ import annotations

import typer

from tokenclub.cli.output import JSON_OPTION, emit

keys_app = typer.Typer(help="Master keys for encryption at rest.", no_args_is_help=True)


@keys_app.command("rotate")
def keys_rotate(json_out: bool = JSON_OPTION) -> None:
    """Make a new master key and re-wrap every stored object's data key with it.

    Only the objects' headers are rewritten; their data is not re-encrypted. The old key stays
    in the key file until every object is re-wrapped, so an interrupted rotation is finished
    by running it again.
    """
    from tokenclub.atrest.rotate import rotate_key_file
    from tokenclub.settings import get_settings

    result = rotate_key_file(get_settings())
    emit(result, json_out, "master key rotated")
