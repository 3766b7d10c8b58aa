"""`gatekeeper users …`: staff accounts (sign-in is by emailed link; there are no passwords)."""

from __future__ import annotations

import json

import click
from flask import current_app
from flask.cli import AppGroup

from gatekeeper.cli.app_loading import reports_errors
from gatekeeper.db.base import db
from gatekeeper.db.unit_of_work import unit_of_work
from gatekeeper.runtime import runtime
from gatekeeper.services import users


@click.group("users", cls=AppGroup)
def group() -> None:
    """Staff accounts for the web UI: release managers, governance reviewers, admins."""


@group.command("add")
@click.argument("email")
@click.option("--name", required=True, help="the person's name, shown in the UI")
@click.option("--role", required=True, type=click.Choice(users.ROLES))
@reports_errors
def users_add(email: str, name: str, role: str) -> None:
    """Create an account; its owner signs in with a link emailed to EMAIL."""
    with unit_of_work(db.session) as session:
        user = users.add_user(
            session, email=email, name=name, role=role, clock=runtime(current_app).clock
        )
        added = f"user {user.email} ({user.role}) added; they sign in at /login"
    click.echo(added)


@group.command("list")
@click.option("--json", "as_json", is_flag=True)
def users_list(as_json: bool) -> None:
    """List accounts with their roles and whether they are active."""
    rows = [
        {
            "email": u.email,
            "name": u.name,
            "role": u.role,
            "active": u.active,
            "created_at": u.created_at.isoformat(),
            "deactivated_at": u.deactivated_at.isoformat() if u.deactivated_at else None,
        }
        for u in users.list_users(db.session)
    ]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        state = "active" if row["active"] else "deactivated"
        # No role: single sign-on mapped none of the person's groups to one.
        role = row["role"] or "no-role"
        click.echo(f"{row['email']:<36} {role:<20} {state:<12} {row['name']}")


@group.command("deactivate")
@click.argument("email")
@reports_errors
def users_deactivate(email: str) -> None:
    """Deactivate an account: its sessions end and its API tokens are revoked at once."""
    with unit_of_work(db.session) as session:
        user = users.deactivate_user(session, email, clock=runtime(current_app).clock)
        done = (
            f"user {user.email} deactivated; their sessions have ended and their API tokens "
            "are revoked"
        )
    click.echo(done)


@group.command("activate")
@click.argument("email")
@reports_errors
def users_activate(email: str) -> None:
    """Let a deactivated account sign in again (with a new emailed link)."""
    with unit_of_work(db.session) as session:
        user = users.activate_user(session, email, clock=runtime(current_app).clock)
        done = (
            f"user {user.email} is active again (their API tokens stay revoked: "
            "gatekeeper tokens create issues new ones)"
        )
    click.echo(done)
