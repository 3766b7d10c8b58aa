"""Ids beyond what the database holds, from URLs, signed tokens, checklists and the command line:
each names nothing (404, "not a valid link", a usage error) and never reaches a query."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskCliRunner
from werkzeug.routing import IntegerConverter

from gatekeeper.cli import cli
from gatekeeper.db.base import MAX_ID, db
from gatekeeper.db.models import Finding
from gatekeeper.domain.clock import FixedClock
from gatekeeper.signing import TokenService
from gatekeeper.web.converters import IdConverter
from tests.conftest import TEST_KEY
from tests.functional.web_helpers import ADMIN, client, fresh_csrf, sign_in
from tests.support.access import call, methods, url
from tests.support.governance import approve, checklist_dir, sync, write_version

pytestmark = pytest.mark.security

HUGE = (MAX_ID + 1, 99999999999999999999, 10**30)
# Every kind of emailed link: its path and the purpose its token is signed for.
LINK_PAGES = {"s": "signoff", "login": "login", "review": "review", "report": "report"}


def int_arguments(app: Flask) -> dict[str, list[str]]:
    """endpoint -> the arguments its route takes through an integer converter."""
    found: dict[str, list[str]] = {}
    for rule in app.url_map.iter_rules():
        names = [n for n, c in rule._converters.items() if isinstance(c, IntegerConverter)]
        if names:
            found[rule.endpoint] = names
    return found


def test_every_integer_route_answers_404_for_an_id_the_database_cannot_hold(
    app: Flask, world: dict[str, Any]
) -> None:
    rules = {r.endpoint: r for r in app.url_map.iter_rules()}
    by_endpoint = int_arguments(app)
    assert {"governance.finding", "checklists.show", "outbox.retry"} <= set(by_endpoint)
    browser = sign_in(app, ADMIN)
    for endpoint, names in sorted(by_endpoint.items()):
        rule = rules[endpoint]
        for name in names:
            assert type(rule._converters[name]) is IdConverter, endpoint
        for method in methods(rule):
            for huge in HUGE:
                path = url(app, rule, {**world, **dict.fromkeys(names, huge)})
                response = call(browser, method, path)
                assert response.status_code == 404, (method, path, response.text[:300])
                assert 'data-status="404"' in response.text
            # The largest id the column holds still reaches the lookup, which finds nothing.
            path = url(app, rule, {**world, **dict.fromkeys(names, MAX_ID)})
            assert call(browser, method, path).status_code == 404, (method, path)


@pytest.mark.parametrize("page", sorted(LINK_PAGES))
@pytest.mark.parametrize("link_id", [*HUGE, 0, -1, True])
def test_a_well_signed_token_with_an_out_of_range_link_id_is_not_a_valid_link(
    app: Flask, clock: FixedClock, page: str, link_id: object
) -> None:
    token = TokenService([TEST_KEY], LINK_PAGES[page], 3600, clock).dumps(
        {"l": link_id, "n": "n" * 32}
    )
    browser = client(app)
    assert browser.get(f"/{page}/{token}").status_code == 404
    posted = browser.post(f"/{page}/{token}", data={"csrf_token": fresh_csrf(browser)})
    assert posted.status_code == 404


def test_the_command_line_refuses_ids_the_database_cannot_hold(runner: FlaskCliRunner) -> None:
    review = ["checklists", "review", "payments-api", "--approve", "--reviewer", "x@example.com"]
    for huge in HUGE:
        result = runner.invoke(cli, ["outbox", "retry", str(huge)])
        assert result.exit_code == 2, result.output
        assert f"{huge} is not in the range 1<=x<={MAX_ID}" in result.output
        result = runner.invoke(cli, [*review, "--version", str(huge)])
        assert result.exit_code == 2, result.output
        assert "not in the range" in result.output


def test_a_checklist_addressing_a_finding_number_beyond_any_id_is_approved(
    app: Flask, clock: FixedClock, tmp_path: Path
) -> None:
    directory = checklist_dir(tmp_path)
    sync(app, clock, directory)
    approve(clock, "payments-api", 7)
    write_version(directory, "payments-api", 8, addresses=[f"F-{MAX_ID + 1}", "F-99999999999"])
    assert sync(app, clock, directory) == ["payments-api v8"]
    approve(clock, "payments-api", 8)
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Finding)) == 0
