"""`tokenclub serve`: the API gateway, with the embedded llama.cpp upstream unless one is given."""

from __future__ import annotations

import os
import signal
import sys
from contextlib import ExitStack

import typer

from tokenclub.settings import get_settings


def serve_command(
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(8000, help="Port to listen on."),
    upstream: str | None = typer.Option(
        None, "--upstream", help="OpenAI-compatible upstream base URL (…/v1)."
    ),
    workers: int = typer.Option(1, min=1, help="Gateway worker processes."),
    log_level: str | None = typer.Option(
        None,
        "--log-level",
        help="debug, info (one access-log line per request), warning or error; "
        "default TOKENCLUB_LOG_LEVEL (info).",
    ),
) -> None:
    """Serve the OpenAI-compatible API, metered and paid for through the ledger.

    With an upstream and neither TOKENCLUB_MODELS nor TOKENCLUB_MODEL_NAME, the served model
    names are the ones the upstream lists at `/v1/models`."""
    if log_level is not None:
        os.environ["TOKENCLUB_LOG_LEVEL"] = log_level
        get_settings.cache_clear()
    import uvicorn  # the server's, the model's and the guard's imports only when serving

    from tokenclub.gateway.llama import LlamaServer
    from tokenclub.guard.config import guard_settings
    from tokenclub.home import open_database

    settings = get_settings()
    guard_settings()  # the workers read the guard's settings too: a bad one stops here, in one line
    open_database(settings).dispose()
    # uvicorn re-raises SIGTERM after its graceful shutdown; exiting through SystemExit lets
    # the embedded model server be stopped on the way out.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with ExitStack() as stack:
        url = upstream or settings.upstream_url
        if not url:
            typer.echo("starting the embedded llama.cpp server (SmolLM2-135M-Instruct)…", err=True)
            url = stack.enter_context(LlamaServer()).base_url
            # The embedded server is served under the configured name, not its file's.
            os.environ["TOKENCLUB_MODEL_NAME"] = settings.model_name
        os.environ["TOKENCLUB_UPSTREAM_URL"] = url
        get_settings.cache_clear()
        typer.echo(f"gateway on http://{host}:{port}/v1 → {url}", err=True)
        uvicorn.run(
            "tokenclub.gateway.asgi:make_app",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_level=settings.log_level,
            access_log=False,
        )
