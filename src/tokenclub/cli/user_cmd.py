"""Commands for portal users: add (the first operator, too), list, reset a password, disable."""

from __future__ import annotations

import typer

from tokenclub.cli.output import JSON_OPTION, emit, print_json, print_rows, session_scope

user_app = typer.Typer(help="Portal users and their roles.", no_args_is_help=True)

PASSWORD_OPTION = typer.Option(
    ...,
    "--password",
    prompt=True,
    hide_input=True,
    confirmation_prompt=True,
    envvar="TOKENCLUB_NEW_PASSWORD",
    help="The password (prompted for when not given; or TOKENCLUB_NEW_PASSWORD).",
)


@user_app.command("add")
def user_add(
    email: str,
    role: str = typer.Option(..., "--role", help="operator, trainer, partner_admin or partner_member."),
    partner: int | None = typer.Option(None, "--partner", help="The partner of partner staff."),
    name: str = typer.Option("", help="The person's name."),
    password: str = PASSWORD_OPTION,
    json_out: bool = JSON_OPTION,
) -> None:
    """Create a portal user; `--role operator` creates the first operator of a new installation."""
    from tokenclub.accounts import audit
    from tokenclub.accounts.users import Role, add_user
    from tokenclub.errors import InvalidInputError

    if role not in set(Role):
        raise InvalidInputError(f"role {role!r} is not one of {', '.join(Role)}")
    with session_scope() as session:
        user = add_user(session, email, password, Role(role), name=name, partner_id=partner)
        audit.record(session, None, "user.add", f"user:{user.id}", None, user.as_dict())
    emit(user.as_dict(), json_out, f"user {user.id}")


@user_app.command("list")
def user_list(
    partner: int | None = typer.Option(None, "--partner", help="Only this partner's staff."),
    json_out: bool = JSON_OPTION,
) -> None:
    """List portal users with their roles."""
    from tokenclub.accounts.users import list_users

    with session_scope() as session:
        rows = [u.as_dict() for u in list_users(session, partner)]
    if json_out:
        print_json(rows)
    else:
        print_rows("users", ("id", "email", "name", "role", "partner_id", "active"), rows)


@user_app.command("reset-password")
def user_reset_password(user_id: int, password: str = PASSWORD_OPTION, json_out: bool = JSON_OPTION) -> None:
    """Set a new password for a user (the operator's password reset); their sessions end."""
    from tokenclub.accounts import audit
    from tokenclub.accounts.users import set_password
    from tokenclub.portal.sessions import end_sessions

    with session_scope() as session:
        user = set_password(session, user_id, password)
        ended = end_sessions(session, user_id)
        audit.record(session, None, "user.reset_password", f"user:{user_id}", None, {"sessions_ended": ended})
    emit(user.as_dict(), json_out, f"user {user_id}")
