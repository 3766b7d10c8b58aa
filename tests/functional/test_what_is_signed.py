"""What signers are shown is what ships: every editable field of a package, through the API and
through the edit page, is either part of the gate's digest (editing it in review makes a new
revision and asks again) or labelled on the signing page as not part of what is signed."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from gatekeeper.db.base import db
from gatekeeper.db.models import AuditEvent, OutboxMessage, PackageRevision
from gatekeeper.db.unit_of_work import unit_of_work
from gatekeeper.domain.clock import FixedClock
from gatekeeper.runtime import runtime
from gatekeeper.services import packages, signoffs
from tests.conftest import SAMPLES
from tests.functional.api_helpers import (
    API_PREFIX,
    RELEASE_MANAGER,
    Api,
    create_package,
    create_token,
    resolve,
    sign,
    sync_and_approve,
)
from tests.functional.web_helpers import add_staff, csrf, sign_in
from tests.support import generated

APPLICATIONS = {"payments-api": "7.4.0", "storefront-web": "2026.11.2"}
UNSIGNED_BLOCK = re.compile(r'<p[^>]*data-signed="false"[^>]*>(.*?)</p>', re.S)
FORM_CONTROL = re.compile(r'<(?:input|textarea)[^>]*\bname="([^"]+)"')
# Each editable field and a different value for it: a field missing here fails the walk.
NEW_TITLE = "Renamed release"
NEW_DATE = "2026-12-24"


@pytest.fixture
def api(app: Flask, clock: FixedClock) -> Api:
    add_staff(clock)
    sync_and_approve(SAMPLES, clock)
    return Api(app, create_token(clock, "ci-walk"))


def _prepare(app: Flask, clock: FixedClock, key: str) -> dict[str, Any]:
    """A package in review with one sign-off in each application and links emailed to everyone
    still asked; its gate before any edit."""
    create_package(clock, key, APPLICATIONS)
    for application in APPLICATIONS:
        assert sign(clock, key, application=application, limit=1) == 1
    with unit_of_work(db.session) as session:
        package = packages.get_package(session, key)
        signoffs.issue_links(session, package, settings=runtime(app).link_settings(), clock=clock)
    return _gate(key, clock)


def _gate(key: str, clock: FixedClock) -> dict[str, Any]:
    db.session.remove()
    return packages.evaluate_gate(db.session, key, clock=clock, overdue_policy="block").to_dict()


def _signing_page(app: Flask, key: str) -> str:
    """The sign-off page of someone still asked, through their newest emailed link."""
    db.session.remove()
    bodies = db.session.scalars(
        sa.select(OutboxMessage.body_text)
        .where(OutboxMessage.template == "signoff_request", OutboxMessage.body_text.contains(key))
        .order_by(OutboxMessage.id.desc())
    ).all()
    assert bodies, "nobody was emailed a sign-off link"
    token = bodies[0].split("/s/", 1)[1].split()[0]
    page = app.test_client().get(f"/s/{token}")
    assert page.status_code == 200, page.text
    return page.text


def _assert_signed_or_labelled(
    app: Flask, clock: FixedClock, key: str, field: str, before: dict[str, Any], shown: str
) -> None:
    after = _gate(key, clock)
    if after["digest"] != before["digest"]:
        assert after["revision"] == before["revision"] + 1, field
        assert after["progress"] != before["progress"], field
        return
    assert after["revision"] == before["revision"], field
    assert after["progress"] == before["progress"], field
    unsigned = " ".join(UNSIGNED_BLOCK.findall(_signing_page(app, key)))
    assert shown in unsigned, f"{field} is not in the digest and not labelled as unsigned"
    db.session.remove()
    history = db.session.scalars(
        sa.select(PackageRevision.changes).where(PackageRevision.signed.is_(False))
    ).all()
    assert any(field in changes for changes in history), f"{field} edit missing from the history"


def _api_edits() -> dict[str, Callable[[list[dict[str, str]]], dict[str, Any]]]:
    """A new value for every property of the API's edit body (and of each application entry)."""

    def with_app(change: Callable[[dict[str, str]], dict[str, str] | None]) -> Callable[..., Any]:
        def edit(current: list[dict[str, str]]) -> dict[str, Any]:
            entries = [e for e in (change(dict(a)) for a in current) if e is not None]
            return {"applications": entries}

        return edit

    return {
        "title": lambda _: {"title": NEW_TITLE},
        "environment": lambda _: {"environment": "staging"},
        "planned_for": lambda _: {"planned_for": NEW_DATE},
        "applications.application": with_app(
            lambda a: None if a["application"] == "storefront-web" else a
        ),
        "applications.version": with_app(lambda a: {**a, "version": a["version"] + ".1"}),
        "applications.change_summary": with_app(
            lambda a: {**a, "change_summary": a["change_summary"] + " (and more)"}
        ),
    }


def _edit_body_fields(api: Api) -> set[str]:
    schema = api.doc["components"]["schemas"]["PackageEdit"]
    found = set()
    for name, node in schema["properties"].items():
        items = node.get("items")
        if items is None:
            found.add(name)
        else:
            found.update(f"{name}.{sub}" for sub in resolve(api.doc, items)["properties"])
    return found


def test_every_api_edit_is_signed_or_labelled_as_not_signed(
    app: Flask, api: Api, clock: FixedClock
) -> None:
    edits = _api_edits()
    assert _edit_body_fields(api) == set(edits), "a new editable field needs a case here"
    for index, (field, edit) in enumerate(sorted(edits.items())):
        key = f"2026.12-api{index}"
        before = _prepare(app, clock, key)
        current = api.get(f"{API_PREFIX}/packages/{key}").json["applications"]
        body = edit(
            [{k: a[k] for k in ("application", "version", "change_summary")} for a in current]
        )
        response = api.call("PATCH", f"{API_PREFIX}/packages/{key}", json=body)
        assert response.status_code == 200, response.json
        shown = {"title": NEW_TITLE, "planned_for": NEW_DATE}.get(field, "")
        _assert_signed_or_labelled(app, clock, key, field, before, shown)


def _form_edits() -> dict[str, Callable[[dict[str, str], str], None]]:
    """A new value for every control of the edit page, by name pattern."""

    def toggle(form: dict[str, str], slug: str) -> None:
        if form.pop(f"app-{slug}", None) is None:
            form[f"app-{slug}"] = "on"
            form[f"app-{slug}-version"] = "1.0.0"

    return {
        "title": lambda form, _: form.update(title=NEW_TITLE),
        "environment": lambda form, _: form.update(environment="staging"),
        "planned_for": lambda form, _: form.update(planned_for=NEW_DATE),
        "app-SLUG": lambda form, slug: toggle(form, slug),
        "app-SLUG-version": lambda form, slug: form.update(
            {f"app-{slug}-version": form[f"app-{slug}-version"] + ".1"}
        ),
        "app-SLUG-summary": lambda form, slug: form.update(
            {f"app-{slug}-summary": form[f"app-{slug}-summary"] + " (and more)"}
        ),
    }


def _current_form(page: str) -> dict[str, str]:
    """The edit form as the browser would send it untouched."""
    form = {"csrf_token": csrf(page)}
    for match in re.finditer(r'<input[^>]*name="([^"]+)"[^>]*>', page):
        tag, name = match.group(0), match.group(1)
        if 'type="checkbox"' in tag:
            if "checked" in tag:
                form[name] = "on"
        elif name != "csrf_token":
            value = re.search(r'value="([^"]*)"', tag)
            form[name] = value.group(1) if value else ""
    for name, text in re.findall(r'<textarea[^>]*name="([^"]+)"[^>]*>(.*?)</textarea>', page, re.S):
        form[name] = text
    return form


def test_every_field_of_the_edit_page_is_signed_or_labelled_as_not_signed(
    app: Flask, api: Api, clock: FixedClock
) -> None:
    edits = _form_edits()
    manager = sign_in(app, RELEASE_MANAGER)
    walked = 0
    key = "2026.12-ui-probe"
    _prepare(app, clock, key)
    names = set(FORM_CONTROL.findall(manager.get(f"/packages/{key}/edit").text)) - {"csrf_token"}
    cases: list[tuple[str, str]] = []
    for name in sorted(names):
        pattern, slug = name, ""
        found = re.fullmatch(r"app-([a-z0-9-]+?)(-version|-summary)?", name)
        if found:
            slug, pattern = found.group(1), "app-SLUG" + (found.group(2) or "")
        assert pattern in edits, f"the edit page has a field {name!r} this walk does not know"
        # The version and summary of an application outside the package are read only when
        # its box is ticked: that case is the box's.
        if pattern == "app-SLUG" or not slug or slug in APPLICATIONS:
            cases.append((pattern, slug))
    for index, (pattern, slug) in enumerate(cases):
        key = f"2026.12-ui{index}"
        before = _prepare(app, clock, key)
        page = manager.get(f"/packages/{key}/edit").text
        form = _current_form(page)
        edits[pattern](form, slug)
        response = manager.post(f"/packages/{key}/edit", data=form)
        assert response.status_code == 302, response.text
        shown = {"title": NEW_TITLE, "planned_for": NEW_DATE}.get(pattern, "")
        _assert_signed_or_labelled(app, clock, key, pattern, before, shown)
        walked += 1
    assert walked == len(cases) >= 6


def test_the_untouched_edit_form_changes_nothing(app: Flask, api: Api, clock: FixedClock) -> None:
    key = "2026.12-same"
    before = _prepare(app, clock, key)
    manager = sign_in(app, RELEASE_MANAGER)
    db.session.remove()
    events = db.session.scalar(sa.select(sa.func.count()).select_from(AuditEvent))
    form = _current_form(manager.get(f"/packages/{key}/edit").text)
    assert manager.post(f"/packages/{key}/edit", data=form).status_code == 302
    assert _gate(key, clock) == before
    assert db.session.scalar(sa.select(sa.func.count()).select_from(AuditEvent)) == events


def test_signed_for_staging_then_moved_to_production_cannot_ship(
    app: Flask, api: Api, clock: FixedClock
) -> None:
    """The attack: every sign-off in for staging, the package moved to production, released
    with the digest checked before the move."""
    key = "2026.12-moved"
    spec = replace(
        generated.package_spec(
            key, (packages.ApplicationSpec(a, v) for a, v in APPLICATIONS.items())
        ),
        environment="staging",
    )
    with unit_of_work(db.session) as session:
        packages.create_package(session, spec, assembler=RELEASE_MANAGER, clock=clock)
        packages.submit_package(session, key, actor=RELEASE_MANAGER, clock=clock)
    sign(clock, key)
    signed_for_staging = _gate(key, clock)
    assert signed_for_staging["status"] == "open"
    moved = api.call("PATCH", f"{API_PREFIX}/packages/{key}", json={"environment": "production"})
    assert moved.status_code == 200
    assert moved.json["revision"] == signed_for_staging["revision"] + 1
    refused = api.call(
        "POST",
        f"{API_PREFIX}/packages/{key}/release",
        json={"digest": signed_for_staging["digest"]},
    )
    assert refused.status_code == 409
    now = _gate(key, clock)
    assert now["status"] == "pending"
    assert now["progress"]["signed"] == 0
    assert now["applications"]
    assert all(a["carried_forward"] == 0 for a in now["applications"])


def test_the_board_lists_unsigned_edits_in_the_revision_history(
    app: Flask, api: Api, clock: FixedClock
) -> None:
    key = "2026.12-board"
    _prepare(app, clock, key)
    api.call("PATCH", f"{API_PREFIX}/packages/{key}", json={"title": NEW_TITLE})
    api.call("PATCH", f"{API_PREFIX}/packages/{key}", json={"planned_for": NEW_DATE})
    api.call("PATCH", f"{API_PREFIX}/packages/{key}", json={"environment": "staging"})
    manager: FlaskClient = sign_in(app, RELEASE_MANAGER)
    page = manager.get(f"/packages/{key}").text
    history = page[page.index('data-testid="revision-history"') :]
    assert history.count('data-signed="false"') == 2
    assert "planned date (none) → 2026-12-24 (not part of what is signed)" in history
    assert "environment production → staging" in history
