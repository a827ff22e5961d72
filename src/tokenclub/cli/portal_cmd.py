"""`tokenclub portal`: the partner portal and the data API, without the model gateway."""

from __future__ import annotations

import typer


def portal_command(
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(8080, help="Port to listen on."),
    workers: int = typer.Option(1, min=1, help="Server processes."),
) -> None:
    """Serve the portal pages (/portal) and the data API (/v1/uploads, /v1/contributions, …)."""
    import uvicorn

    from tokenclub.home import open_database
    from tokenclub.settings import get_settings

    open_database(get_settings()).dispose()
    typer.echo(f"portal on http://{host}:{port}/portal, data API on http://{host}:{port}/v1", err=True)
    uvicorn.run(
        "tokenclub.portal.app:make_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="warning",
    )
