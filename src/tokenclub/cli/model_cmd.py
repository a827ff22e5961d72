"""Commands for the model registry: which model was trained on which snapshot, and is it served."""

from __future__ import annotations

import typer

from tokenclub.cli.output import JSON_OPTION, emit, print_json, print_rows, session_scope

model_app = typer.Typer(
    help="Model registry: models trained on snapshots, and what the gateway serves.", no_args_is_help=True
)

ACTOR_OPTION = typer.Option(..., "--as", help="Who acts: a trainer's or operator's portal e-mail.")


@model_app.command("register")
def model_register(
    name: str,
    snapshot: int = typer.Option(..., "--snapshot", help="The snapshot the model was trained on."),
    served_as: str | None = typer.Option(None, "--served-as", help="Gateway model name that serves it."),
    actor: str = ACTOR_OPTION,
    json_out: bool = JSON_OPTION,
) -> None:
    """Record that a model was trained on a snapshot (and, with --served-as, that it is served)."""
    from tokenclub.export.access import authorize, log_action
    from tokenclub.export.registry import register_model

    with session_scope() as session:
        role = authorize(session, actor)
        view = register_model(session, name, snapshot, actor, served_as)
        log_action(
            session,
            actor,
            role,
            "model_register",
            snapshot_id=snapshot,
            detail={"model": view.name, "served_as": view.served_as},
        )
    emit(view.as_dict(), json_out, f"model {view.name}")


@model_app.command("serve")
def model_serve(name: str, served_as: str, actor: str = ACTOR_OPTION, json_out: bool = JSON_OPTION) -> None:
    """Mark a registered model as served under a gateway model name."""
    from tokenclub.export.access import authorize, log_action
    from tokenclub.export.registry import serve_model

    with session_scope() as session:
        role = authorize(session, actor)
        view = serve_model(session, name, served_as)
        log_action(
            session,
            actor,
            role,
            "model_serve",
            snapshot_id=view.snapshot_id,
            detail={"model": view.name, "served_as": view.served_as},
        )
    emit(view.as_dict(), json_out, f"model {view.name}")


@model_app.command("retire")
def model_retire(name: str, actor: str = ACTOR_OPTION, json_out: bool = JSON_OPTION) -> None:
    """The model is no longer served: withdrawn partners' text that no served model saw any more
    leaves the leak-guard index (released, and the index rebuilt without it)."""
    from tokenclub.accounts.partners import withdrawn_partners
    from tokenclub.cli.output import corpus_store
    from tokenclub.export.access import authorize, log_action
    from tokenclub.export.registry import freed_by_retirement, retire_model
    from tokenclub.guard.indexing.build import rebuild_index
    from tokenclub.guard.indexing.index import open_index
    from tokenclub.guard.indexing.parts import guard_root
    from tokenclub.guard.state.releases import record_release
    from tokenclub.home import open_database
    from tokenclub.settings import get_settings

    settings = get_settings()
    with session_scope() as session:
        role = authorize(session, actor)
        view = retire_model(session, name)
        freed = freed_by_retirement(session, view.snapshot_id, set(withdrawn_partners(session)))
        log_action(
            session,
            actor,
            role,
            "model_retire",
            snapshot_id=view.snapshot_id,
            detail={"model": view.name, "guard_released": sorted(freed)},
        )
    root = guard_root(settings.home)
    for partner in sorted(freed):
        record_release(root, partner)
    if freed and open_index(root) is not None:
        db = open_database(settings)
        try:
            rebuild_index(db, settings.home, corpus_store())
        finally:
            db.dispose()
    emit(view.as_dict() | {"guard_released": sorted(freed)}, json_out, f"model {view.name}")


@model_app.command("list")
def model_list(json_out: bool = JSON_OPTION) -> None:
    """Registered models, their snapshots and the names they are served under."""
    from tokenclub.export.registry import list_models

    with session_scope() as session:
        rows = [view.as_dict() for view in list_models(session)]
    if json_out:
        print_json(rows)
    else:
        print_rows("models", ("name", "snapshot_id", "served_as", "registered_at", "retired_at"), rows)
