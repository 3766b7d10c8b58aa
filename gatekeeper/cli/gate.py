"""`gatekeeper gate …`: ask the gate, locally or from a server. The remote path imports only the
standard library and click, so a CI step starts in a blink."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import click

from gatekeeper import gate_client
from gatekeeper.domain.errors import GatekeeperError


@click.group("gate")
def group() -> None:
    """Ask whether a package may be released."""


@group.command("check")
@click.argument("package")
@click.option("--url", envvar="GATEKEEPER_URL", help="a remote Gatekeeper server (else local)")
@click.option("--token", envvar="GATEKEEPER_TOKEN", help="API token for --url (gate:read)")
@click.option("--json", "as_json", is_flag=True, help="print the gate as JSON")
@click.option(
    "--wait",
    is_flag=True,
    help="poll until the gate is open or blocked, printing what changes; exit 3 at the timeout",
)
@click.option(
    "--timeout", type=float, default=600.0, show_default=True, help="seconds, with --wait"
)
@click.option(
    "--interval",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="seconds between --wait polls [default: 2, growing to 15 while nothing changes]",
)
@click.pass_context
def gate_check(
    ctx: click.Context,
    package: str,
    url: str | None,
    token: str | None,
    as_json: bool,
    wait: bool,
    timeout: float,
    interval: float | None,
) -> None:
    """Exit 0 open, 1 blocked, 3 pending, 4 error (the gate fails closed)."""
    try:
        read = _gate_reader(ctx, url, token)
        gate = read(package)
        if wait:
            gate = gate_client.wait_for_decision(
                read,
                package,
                first=gate,
                timeout=timeout,
                interval=interval,
                on_change=lambda g: click.echo(gate_client.wait_line(g), err=True),
            )
            if gate["status"] == "pending":  # the wait ran out of time
                click.echo(gate_client.timeout_line(gate, timeout), err=True)
    except (gate_client.GateUnavailable, GatekeeperError) as exc:
        click.echo(f"error: {exc}", err=True)
        ctx.exit(gate_client.EXIT_ERROR)
    except Exception as exc:
        click.echo(f"error: the gate could not be read ({type(exc).__name__})", err=True)
        ctx.exit(gate_client.EXIT_ERROR)
    click.echo(json.dumps(gate, indent=2) if as_json else gate_client.describe(gate))
    ctx.exit(gate_client.EXIT_BY_STATUS[gate["status"]])


@group.command("badge-url")
@click.argument("package")
@click.pass_context
def gate_badge_url(ctx: click.Context, package: str) -> None:
    """Print the signed URL of the package's gate status badge (SVG)."""
    from gatekeeper.cli.app_loading import load_app, reports_errors
    from gatekeeper.db.base import db
    from gatekeeper.runtime import runtime
    from gatekeeper.services import packages
    from gatekeeper.signing import badge_signature

    app = load_app(ctx)

    @reports_errors
    def print_url() -> None:
        packages.get_package(db.session, package)
        settings = runtime(app).settings
        signature = badge_signature(settings.secret_keys, package)
        click.echo(f"{settings.base_url}/badges/{package}/{signature}.svg")

    with app.app_context():
        print_url()


def _gate_reader(
    ctx: click.Context, url: str | None, token: str | None
) -> Callable[[str], dict[str, Any]]:
    if url:
        if not token:
            raise gate_client.GateUnavailable("--url needs --token or GATEKEEPER_TOKEN")
        return gate_client.remote_reader(url, token)
    from gatekeeper.cli.app_loading import load_app
    from gatekeeper.db.base import db
    from gatekeeper.runtime import runtime
    from gatekeeper.services import packages

    app = load_app(ctx)

    def read_local(key: str) -> dict[str, Any]:
        with app.app_context():
            try:
                settings = runtime(app).settings
                return packages.evaluate_gate(
                    db.session,
                    key,
                    clock=runtime(app).clock,
                    overdue_policy=settings.overdue_review_policy,
                    finding_warn_after=runtime(app).governance_settings().finding_warn_after,
                ).to_dict()
            finally:
                db.session.remove()

    return read_local
