"""How commands get the Flask app: one factory call, configuration errors as one line."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import click
from flask import Flask
from flask.cli import ScriptInfo

from gatekeeper.app import create_app
from gatekeeper.domain.checklist import ChecklistInvalid
from gatekeeper.domain.errors import GatekeeperError
from gatekeeper.settings import SettingsError

F = TypeVar("F", bound=Callable[..., Any])


def _create_app() -> Flask:
    try:
        return create_app()
    except SettingsError as exc:
        raise click.ClickException(f"configuration error: {exc}") from None


def script_info() -> ScriptInfo:
    return ScriptInfo(create_app=_create_app, set_debug_flag=False)


def load_app(ctx: click.Context) -> Flask:
    """The app of this invocation (the test runner passes its own through the context)."""
    info = ctx.find_object(ScriptInfo)
    if info is None:
        info = ctx.find_root().obj = script_info()
    return info.load_app()


def reports_errors(command: F) -> F:
    """Turn domain errors into a one-line message and exit status 1 instead of a traceback."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except ChecklistInvalid as exc:
            for problem in exc.problems:
                click.echo(str(problem), err=True)
            raise SystemExit(1) from None
        except GatekeeperError as exc:
            click.echo(f"error: {exc.message}", err=True)
            raise SystemExit(1) from None

    return wrapper  # type: ignore[return-value]
