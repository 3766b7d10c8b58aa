"""`gatekeeper tokens …`: API tokens, printed once and stored as a hash."""

from __future__ import annotations

import json

import click
from flask import current_app
from flask.cli import AppGroup

from gatekeeper.cli.app_loading import reports_errors
from gatekeeper.db.base import db
from gatekeeper.db.unit_of_work import unit_of_work
from gatekeeper.runtime import runtime
from gatekeeper.services import tokens


@click.group("tokens", cls=AppGroup)
def group() -> None:
    """API tokens for CI and scripts: shown once, stored hashed, scoped, revocable."""


@group.command("create")
@click.option("--name", required=True, help="unique name; it is the actor in the audit trail")
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    required=True,
    type=click.Choice(tokens.SCOPES),
    help="repeat for several scopes",
)
@click.option(
    "--owner",
    help="the accountable person, an active staff account; required with packages:write, "
    "and then a release manager or an admin",
)
@reports_errors
def tokens_create(name: str, scopes: tuple[str, ...], owner: str | None) -> None:
    """Create a token and print it once; only its hash is stored."""
    with unit_of_work(db.session) as session:
        issued = tokens.create_token(
            session, name=name, scopes=scopes, owner=owner, clock=runtime(current_app).clock
        )
    click.echo(issued.secret)
    click.echo(
        f"token {issued.name!r} with scopes {', '.join(issued.scopes)}: copy it now, "
        "it is not shown again",
        err=True,
    )


@group.command("list")
@click.option("--json", "as_json", is_flag=True)
def tokens_list(as_json: bool) -> None:
    """List tokens (names, prefixes, scopes, last use); never the secrets."""
    rows = [
        {
            "name": t.name,
            "prefix": t.prefix,
            "scopes": t.scopes.split(),
            "owner": t.owner,
            "created_at": t.created_at.isoformat(),
            "last_used_at": t.last_used_at.isoformat() if t.last_used_at else None,
            "revoked_at": t.revoked_at.isoformat() if t.revoked_at else None,
        }
        for t in tokens.list_tokens(db.session)
    ]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        state = "revoked" if row["revoked_at"] else f"last used {row['last_used_at'] or 'never'}"
        click.echo(f"{row['name']:<24} {row['prefix']}…  {' '.join(row['scopes']):<40} {state}")


@group.command("revoke")
@click.argument("name")
@reports_errors
def tokens_revoke(name: str) -> None:
    """Revoke a token at once; requests using it get 401 from now on."""
    with unit_of_work(db.session) as session:
        tokens.revoke_token(session, name, clock=runtime(current_app).clock)
    click.echo(f"token {name!r} revoked")
