"""Option rules click does not declare itself: options that contradict each other."""

from __future__ import annotations

import click
from click.core import ParameterSource

# Sources meaning the user asked for the option, as opposed to its default.
_GIVEN = (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT, ParameterSource.PROMPT)


def one_of(ctx: click.Context, *names: str, required: bool = False) -> str | None:
    """The one of the options `names` the user gave; a usage error (exit 2) naming them when
    several were given, or none although one is required."""
    flags = {p.name: p.opts[0] for p in ctx.command.params if p.name in names}
    given = [name for name in names if ctx.get_parameter_source(name) in _GIVEN]
    if len(given) > 1:
        raise click.UsageError(
            f"{' and '.join(flags[n] for n in given)} cannot be used together: choose one", ctx
        )
    if required and not given:
        raise click.UsageError(f"choose {' or '.join(flags[n] for n in names)}", ctx)
    return given[0] if given else None
