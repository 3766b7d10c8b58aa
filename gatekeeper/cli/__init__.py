"""The `gatekeeper` console script: each command group lives in its own module, imported only
when that command runs, so `gatekeeper --help` and the remote gate check start fast."""

from __future__ import annotations

import importlib
from typing import Any

import click


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use; `--help` reads their one-line help
    from the table below instead of importing them."""

    def __init__(self, *args: Any, lazy: dict[str, tuple[str, str, bool]], **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.lazy = lazy

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(self.lazy)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.lazy:
            return None
        target, _, needs_app = self.lazy[cmd_name]
        module_name, attribute = target.split(":")
        command: click.Command = getattr(importlib.import_module(module_name), attribute)
        if needs_app and ctx.obj is None:
            from gatekeeper.cli.app_loading import script_info

            ctx.obj = script_info()
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, self.lazy[name][1]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


# name -> (module:attribute, one-line help, needs the Flask app)
COMMANDS: dict[str, tuple[str, str, bool]] = {
    "audit": (
        "gatekeeper.cli.audit:group",
        "The tamper-evident audit trail, release evidence packs and the release population.",
        True,
    ),
    "backup": (
        "gatekeeper.cli.backup:command",
        "Write a consistent backup while the app runs.",
        True,
    ),
    "checklists": (
        "gatekeeper.cli.checklists:group",
        "Validate, load and review checklist files.",
        True,
    ),
    "db": ("gatekeeper.cli.database:group", "Database migrations (Alembic).", True),
    "demo": (
        "gatekeeper.cli.demo:command",
        "Run the whole product locally: SQLite, sample data, mail catcher, worker, web app.",
        True,
    ),
    "findings": (
        "gatekeeper.cli.findings:group",
        "Problems found after releases: list them, triage them into classes.",
        True,
    ),
    # The gate group loads the app itself, and only for a local check: `gate check --url`
    # talks HTTP and never imports Flask or SQLAlchemy.
    "freezes": (
        "gatekeeper.cli.freezes:group",
        "The freeze calendar: its versions and their governance review.",
        True,
    ),
    "gate": ("gatekeeper.cli.gate:group", "Ask whether a package may be released.", False),
    "outbox": (
        "gatekeeper.cli.outbox:group",
        "Inspect queued and dead-lettered email and webhooks.",
        True,
    ),
    "packages": (
        "gatekeeper.cli.packages:group",
        "Release packages: declare an emergency.",
        True,
    ),
    "people": (
        "gatekeeper.cli.people:group",
        "Who is away and when they are back; their deputies sign meanwhile.",
        True,
    ),
    "reviews": (
        "gatekeeper.cli.reviews:group",
        "Learning reviews of releases that failed their users.",
        True,
    ),
    "routes": ("flask.cli:routes_command", "Show the web app's routes.", True),
    "serve": (
        "gatekeeper.cli.serve:command",
        "Run the web app with the built-in server (production: gunicorn gatekeeper.wsgi:app).",
        True,
    ),
    "shell": ("flask.cli:shell_command", "A Python shell in the app's context.", True),
    "tokens": (
        "gatekeeper.cli.tokens:group",
        "API tokens for CI and scripts: shown once, stored hashed, scoped, revocable.",
        True,
    ),
    "users": (
        "gatekeeper.cli.users:group",
        "Staff accounts for the web UI: release managers, governance reviewers, admins.",
        True,
    ),
    "webhooks": (
        "gatekeeper.cli.webhooks:group",
        "Webhook subscriptions: signed posts of gate and package events.",
        True,
    ),
    "worker": (
        "gatekeeper.cli.worker:command",
        "Deliver queued email and webhooks (with retries), send reminders, warn of expiry.",
        True,
    ),
}

cli = LazyGroup(
    "gatekeeper",
    lazy=COMMANDS,
    help="Gatekeeper: release-gate checklists, sign-offs, and the gate CI asks before deploying.",
)


def main() -> None:
    cli.main(prog_name="gatekeeper")
