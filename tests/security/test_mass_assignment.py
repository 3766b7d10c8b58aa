"""Mass assignment: fields the server alone decides (state, revision, digest, approved_at, who
assembled or signed, ids…) sent through every write path — each JSON API write operation walked
from the OpenAPI document, and each browser form walked from the URL map: the staff forms and the
emailed sign-off, review and report links.

The attempt is made twice, on twin targets: once plain, once with every server-decided field added
to the body (and the query string). A refused attempt must change nothing; an accepted one must end
exactly like its plain twin. The field names come from the API document, the database tables and a
list of names attackers try (tests/support/api_walk.py)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from gatekeeper.db.base import db
from gatekeeper.db.models import (
    Absence,
    Application,
    AuditEvent,
    CalendarKey,
    ChecklistVersion,
    ConfirmationLink,
    Deployment,
    Emergency,
    EmergencyApproval,
    Finding,
    GovernanceReview,
    LearningReview,
    OutboxMessage,
    Package,
    PackageApplication,
    PackageRevision,
    ReportLink,
    ReviewLink,
    ScenarioProposal,
    SignInLink,
    Signoff,
    SignoffLink,
    SignoffRequest,
    TriageLink,
    User,
    WebhookSubscription,
)
from gatekeeper.db.unit_of_work import unit_of_work
from gatekeeper.domain.clock import FixedClock
from gatekeeper.runtime import runtime
from gatekeeper.services import (
    calendar_feed,
    checklists,
    confirmations,
    deputies,
    emergencies,
    findings,
    learning_reviews,
    packages,
    signoffs,
    tokens,
    users,
    webhooks,
)
from gatekeeper.services.links import RECENT
from tests.conftest import SAMPLES, START
from tests.functional.api_helpers import Api, assert_envelope, resolve, sign, sync_and_approve
from tests.functional.web_helpers import (
    ADMIN,
    MANAGER,
    OTHER_MANAGER,
    REVIEWER,
    add_staff,
    client,
    csrf,
    fresh_csrf,
    path_of,
    sign_in,
    sign_in_url,
)
from tests.support.access import add_proposal, browser_post_rules
from tests.support.api_walk import (
    DOCUMENT,
    Operation,
    hostile_value,
    server_decided,
    write_operations,
)
from tests.support.governance import BOARD, checklist_dir, release, write_version
from tests.support.governance import sync as sync_versions
from tests.support.governance import tokens as emailed
from tests.support.link_forms import positive_form, request_prefixes
from tests.support.mail import dead_letter

pytestmark = pytest.mark.security

TWINS = ("plain", "attacked")
# Row ids inside text ("sign-off link 4", "F-2"): they differ between twins by construction.
ROW_REFERENCE = re.compile(r"(?<=link )\d+|(?<=F-)\d+")
INJECTED_MARKS = ("mallory@example.com", "injected", "4242", "2020-01-01")


@pytest.fixture
def base(app: Flask, clock: FixedClock) -> None:
    add_staff(clock)
    sync_and_approve(SAMPLES, clock)


# --- what an outcome is ---------------------------------------------------------------------------


def row(obj: object, *, drop: Iterable[str] = ()) -> dict[str, object]:
    """Every column of a mapped row but its ids (and `drop`): ids differ between twins, and so
    do record MACs and package seals, which cover the ids."""
    mapper = sa.inspect(obj).mapper
    dropped = {*drop, "mac", "record_seal"}
    return {
        a.key: getattr(obj, a.key)
        for a in mapper.column_attrs
        if a.key != "id" and not a.key.endswith("_id") and a.key not in dropped
    }


def normalized(value: object, replacements: list[tuple[str, str]]) -> object:
    """`value` with each twin's own names (its key, its digest) replaced by placeholders; lists of
    rows sorted, since the twins' rows have different ids."""
    if isinstance(value, str):
        for old, new in replacements:
            value = value.replace(old, new)
        return ROW_REFERENCE.sub("#", value)
    if isinstance(value, dict):
        return {k: normalized(v, replacements) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return sorted((normalized(v, replacements) for v in value), key=repr)
    return value


def rows(query: Any, *, drop: Iterable[str] = ()) -> list[dict[str, object]]:
    return [row(found, drop=drop) for found in db.session.scalars(query)]


def package_outcome(key: str) -> object:
    """Everything a write can change about one package, its requests, links, sign-offs, release
    links, audit events and emails."""
    db.session.remove()
    package = db.session.scalar(sa.select(Package).where(Package.key == key))
    if package is None:
        return {"package": None}
    replacements = [(key, "<key>")]
    if package.release_digest:
        replacements.insert(0, (package.release_digest, "<digest>"))
    found = {
        "package": row(package),
        "applications": rows(
            sa.select(PackageApplication).where(PackageApplication.package_id == package.id)
        ),
        "revisions": rows(
            sa.select(PackageRevision).where(PackageRevision.package_id == package.id)
        ),
        "requests": rows(sa.select(SignoffRequest).where(SignoffRequest.package_id == package.id)),
        "links": rows(
            sa.select(SignoffLink).where(SignoffLink.package_id == package.id), drop=["nonce_hash"]
        ),
        "signoffs": rows(sa.select(Signoff).where(Signoff.package_id == package.id)),
        "report_links": rows(
            sa.select(ReportLink).where(ReportLink.package_id == package.id), drop=["nonce_hash"]
        ),
        # The gate's digest covers the package key, which differs between twins by design.
        "deployments": rows(
            sa.select(Deployment).where(Deployment.package_id == package.id),
            drop=["gate", "gate_digest"],
        ),
        "emergency": rows(sa.select(Emergency).where(Emergency.package_id == package.id)),
        "approvals": rows(
            sa.select(EmergencyApproval)
            .join(Emergency, Emergency.id == EmergencyApproval.emergency_id)
            .where(Emergency.package_id == package.id)
        ),
        "events": [
            (e.action, e.actor, e.revision, e.subject)
            for e in db.session.scalars(sa.select(AuditEvent).where(AuditEvent.package == key))
        ],
        "emails": [
            (m.template, m.to_address, m.state)
            for m in db.session.scalars(
                sa.select(OutboxMessage).where(OutboxMessage.body_text.contains(key))
            )
        ],
    }
    db.session.remove()
    return normalized(found, replacements)


def differences(plain: object, attacked: object, at: str = "") -> list[str]:
    """Where two outcomes differ, as readable paths (for the assertion message)."""
    if isinstance(plain, dict) and isinstance(attacked, dict):
        return [
            found
            for name in sorted(set(plain) | set(attacked), key=str)
            for found in differences(plain.get(name), attacked.get(name), f"{at}.{name}")
        ]
    if isinstance(plain, list | tuple) and isinstance(attacked, list | tuple):
        if len(plain) != len(attacked):
            return [f"{at}: {len(plain)} rows plain, {len(attacked)} attacked: {attacked!r}"]
        return [
            found
            for index, (p, a) in enumerate(zip(plain, attacked, strict=True))
            for found in differences(p, a, f"{at}[{index}]")
        ]
    return [] if plain == attacked else [f"{at}: {plain!r} plain, {attacked!r} attacked"]


def assert_same_outcome(outcomes: Mapping[str, object]) -> None:
    found = differences(outcomes["plain"], outcomes["attacked"])
    assert not found, "the injected fields made a difference:\n" + "\n".join(found)


def injected_fields(declared: Iterable[str]) -> dict[str, object]:
    """Every server-decided field a body declaring `declared` must not carry, with a value."""
    return {name: hostile_value(name) for name in server_decided(frozenset(declared))}


def as_form(fields: dict[str, object]) -> dict[str, str]:
    return {name: str(value) for name, value in fields.items()}


def assert_no_injected_value(outcome: object) -> None:
    text = repr(outcome)
    for mark in INJECTED_MARKS:
        assert mark not in text, f"{mark!r} reached the database: {text}"


# --- the JSON API, walked from its document -----------------------------------------------------

OPERATIONS = write_operations()


def _api_package(clock: FixedClock, key: str, *, submit: bool, signed: bool = False) -> None:
    spec = packages.PackageSpec(
        key, f"Release {key}", "production", None, (packages.ApplicationSpec("payments-api", "8"),)
    )
    with unit_of_work(db.session()) as session:
        packages.create_package(session, spec, assembler=MANAGER, clock=clock)
        if submit:
            packages.submit_package(session, key, actor=MANAGER, clock=clock)
    if signed:
        sign(clock, key)


def _gate_digest(api: Api, key: str) -> str:
    gate = api.get(f"/api/v1/packages/{key}/gate").json
    assert gate is not None
    assert gate["status"] == "open", gate
    digest: str = gate["digest"]
    return digest


def _create_body(clock: FixedClock, api: Api, key: str) -> dict[str, Any] | None:
    return {
        "key": key,
        "title": "November",
        "environment": "production",
        "applications": [
            {"application": "payments-api", "version": "8", "change_summary": "Refund queue"}
        ],
    }


def _edit_body(clock: FixedClock, api: Api, key: str) -> dict[str, Any] | None:
    _api_package(clock, key, submit=True)
    return {"title": "Edited", "applications": [{"application": "payments-api", "version": "9"}]}


def _draft(clock: FixedClock, api: Api, key: str) -> dict[str, Any] | None:
    _api_package(clock, key, submit=False)
    return None


def _in_review(clock: FixedClock, api: Api, key: str) -> dict[str, Any] | None:
    _api_package(clock, key, submit=True)
    return None


def _storefront(app: Flask, clock: FixedClock, key: str, *, declared: bool = False) -> None:
    """A submitted storefront-web package (its checklist allows emergencies)."""
    spec = packages.PackageSpec(
        key, f"Hotfix {key}", "production", None, (packages.ApplicationSpec("storefront-web", "9"),)
    )
    links = runtime(app).link_settings()
    with unit_of_work(db.session()) as session:
        packages.create_package(session, spec, assembler=MANAGER, clock=clock)
        signoffs.submit_for_signoff(session, key, actor=MANAGER, clock=clock, links=links)
        if declared:
            emergencies.declare(
                session, key, reason="Checkout is down", actor=MANAGER, clock=clock, links=links
            )


def _emergency_body(clock: FixedClock, api: Api, key: str) -> dict[str, Any] | None:
    _storefront(api.app, clock, key)
    return {"reason": "Checkout is down"}


def _release_body(clock: FixedClock, api: Api, key: str) -> dict[str, Any] | None:
    _api_package(clock, key, submit=True, signed=True)
    return {"digest": _gate_digest(api, key), "notes": "Shipped"}


def _deployment_body(clock: FixedClock, api: Api, key: str) -> dict[str, Any] | None:
    _api_package(clock, key, submit=True, signed=True)
    return {
        "environment": "production",
        "applications": [{"application": "payments-api", "version": "8"}],
        "pipeline_url": "https://ci.example.com/pipelines/8",
    }


# operationId -> (clock, api, key) -> the body a well-behaved client sends, after putting the
# package `key` in the state the operation needs (None: the operation takes no body).
API_PREPARE: dict[str, Callable[[FixedClock, Api, str], dict[str, Any] | None]] = {
    "createPackage": _create_body,
    "editPackage": _edit_body,
    "submitPackage": _draft,
    "cancelPackage": _in_review,
    "releasePackage": _release_body,
    "recordDeployment": _deployment_body,
    "declareEmergency": _emergency_body,
}


def test_every_api_write_operation_has_a_mass_assignment_case() -> None:
    assert {o.operation_id for o in OPERATIONS} == set(API_PREPARE)
    assert len(OPERATIONS) >= 5


def _nested_schemas(operation: Operation) -> dict[str, frozenset[str]]:
    """Array-of-object fields of the body, with the fields their items declare."""
    schema = operation.body_schema or {}
    found = {}
    for name, prop in schema.get("properties", {}).items():
        items = resolve(DOCUMENT, prop.get("items", {})) if prop.get("type") == "array" else {}
        if items.get("type") == "object":
            found[name] = frozenset(items.get("properties", {}))
    return found


@pytest.mark.parametrize("operation", OPERATIONS, ids=str)
def test_api_writes_refuse_or_ignore_server_decided_fields(
    app: Flask, base: None, clock: FixedClock, operation: Operation
) -> None:
    with unit_of_work(db.session()) as session:
        secret = tokens.create_token(
            session, name="writer", scopes=tokens.SCOPES, owner=MANAGER, clock=clock
        ).secret
    api = Api(app, secret)
    fields = injected_fields(operation.declared)
    assert {"state", "revision", "digest", "approved_at", "released_at", "id"} <= (
        set(fields) | operation.declared
    )
    query = "?" + urlencode(as_form(fields))
    outcomes = {}
    for twin in TWINS:
        key = f"2026.11-ma-{twin}"
        body = API_PREPARE[operation.operation_id](clock, api, key)
        path = operation.url(key=key)
        if twin == "attacked":
            before = package_outcome(key)
            if operation.body_schema is not None:
                # Each field alone, all of them at once, and inside each nested entry: refused,
                # naming the field, and nothing changes.
                attempts: list[tuple[dict[str, Any], list[str]]] = [
                    ({**(body or {}), name: value}, [name]) for name, value in fields.items()
                ]
                attempts.append(({**(body or {}), **fields}, list(fields)))
                for name, declared in _nested_schemas(operation).items():
                    for entry in (body or {}).get(name, []):
                        nested = injected_fields(declared)
                        attempts.append(({**(body or {}), name: [{**entry, **nested}]}, []))
                for attempt, named in attempts:
                    response = api.call(operation.method.upper(), path, json=attempt)
                    error = assert_envelope(response, 422, "validation_failed")
                    assert all(n in str(error["details"]) for n in named), (named, error)
                assert package_outcome(key) == before
                assert len(attempts) > len(fields)
            else:
                body = {**fields}  # a body the operation does not read
            path += query  # and the query string, which no write reads
        response = api.call(operation.method.upper(), path, json=body)
        assert response.status_code < 300, response.json
        outcomes[twin] = (response.status_code, package_outcome(key))
    assert_same_outcome(outcomes)
    assert_no_injected_value(outcomes["attacked"])


# --- browser forms, walked from the URL map ------------------------------------------------------


@dataclass
class Target:
    """One twin: who posts what where, and how to read the outcome afterwards."""

    browser: FlaskClient
    path: str
    form: dict[str, str]
    observe: Callable[[], object]
    # Per-request names only this form has (r<id>-kind…), injected next to the generic ones.
    extra: dict[str, str] = field(default_factory=dict)


def _package(app: Flask, clock: FixedClock, key: str, *, submit: bool = True) -> None:
    spec = packages.PackageSpec(
        key, f"Release {key}", "production", None, (packages.ApplicationSpec("payments-api", "8"),)
    )
    with unit_of_work(db.session()) as session:
        packages.create_package(session, spec, assembler=MANAGER, clock=clock)
        if submit:
            signoffs.submit_for_signoff(
                session, key, actor=MANAGER, clock=clock, links=runtime(app).link_settings()
            )


def _signoff_path(address: str) -> str:
    db.session.remove()
    path = f"/s/{emailed('s', 'signoff_request')[address]}"
    db.session.remove()
    return path


def _new_package(app: Flask, clock: FixedClock, key: str) -> Target:
    form = {
        "key": key,
        "title": "November",
        "environment": "production",
        "planned_for": "2026-11-26",
        "app-payments-api": "on",
        "app-payments-api-version": "8",
        "app-payments-api-summary": "Refund queue",
        "action": "submit",
    }
    return Target(sign_in(app, MANAGER), "/packages/new", form, lambda: package_outcome(key))


def _package_action(action: str, *, submit: bool = True) -> Callable[..., Target]:
    def prepare(app: Flask, clock: FixedClock, key: str) -> Target:
        _package(app, clock, key, submit=submit)
        return Target(
            sign_in(app, MANAGER), f"/packages/{key}/{action}", {}, lambda: package_outcome(key)
        )

    return prepare


def _edit(app: Flask, clock: FixedClock, key: str) -> Target:
    target = _package_action("edit")(app, clock, key)
    target.form = {
        "title": "Edited",
        "environment": "staging",
        "planned_for": "2026-11-27",
        "app-payments-api": "on",
        "app-payments-api-version": "9",
    }
    return target


def _release(app: Flask, clock: FixedClock, key: str) -> Target:
    target = _package_action("release")(app, clock, key)
    sign(clock, key)
    result = packages.evaluate_gate(db.session(), key, clock=clock, overdue_policy="block")
    db.session.remove()
    target.form = {"digest": result.digest, "notes": "Shipped"}
    return target


def _declare(app: Flask, clock: FixedClock, key: str) -> Target:
    _storefront(app, clock, key)
    path = f"/packages/{key}/emergency"
    form = {"reason": "Checkout is down"}
    return Target(sign_in(app, MANAGER), path, form, lambda: package_outcome(key))


def _approve_emergency(app: Flask, clock: FixedClock, key: str) -> Target:
    _storefront(app, clock, key, declared=True)
    db.session.remove()
    token = emailed("emergency", "emergency_approval", about=key)["sre-lead@example.com"]
    db.session.remove()
    return Target(client(app), f"/emergency/{token}", {}, lambda: package_outcome(key))


def _decide(app: Flask, clock: FixedClock, key: str) -> Target:
    _package(app, clock, key)
    path = _signoff_path("raj@example.com")
    browser = client(app)
    page = browser.get(path).text
    extra: dict[str, str] = {}
    for prefix in request_prefixes(page):
        extra.update(
            {
                f"{prefix}-kind": "key_user",
                f"{prefix}-signer": "mallory@example.com",
                f"{prefix}-revision": "4242",
                f"{prefix}-state": "signed",
                f"{prefix}-signed_at": "2020-01-01T00:00:00+00:00",
                f"{prefix}-scenario-0": "on",
            }
        )
    form = positive_form(page)
    del form["csrf_token"]
    return Target(browser, path, form, lambda: package_outcome(key), extra)


def _resend(app: Flask, clock: FixedClock, key: str) -> Target:
    # Submitted over an hour ago, so that each twin's resend really sends a link: a young link
    # is kept, and the other twin's emails to the same person count towards the hourly limit.
    submitted_at = clock.now() - RECENT - signoffs.RESEND_LIMIT.keep_newer_than
    _package(app, FixedClock(submitted_at), key)
    form = {"email": "raj@example.com", "package": key}
    return Target(client(app), "/s/resend", form, lambda: package_outcome(key))


def _other_versions(version_id: int) -> list[tuple[int, str, str]]:
    db.session.remove()
    found = [
        (v.id, v.state, v.sha256)
        for v in db.session.scalars(
            sa.select(ChecklistVersion)
            .where(ChecklistVersion.id != version_id)
            .order_by(ChecklistVersion.id)
        )
    ]
    db.session.remove()
    return found


def _review(app: Flask, clock: FixedClock, key: str) -> Target:
    """A new payments-api version for BOARD to approve through their review link; the twins are
    two successive versions (8, then 9)."""
    directory = checklist_dir(Path(app.instance_path), f"checklists-{key}")
    db.session.remove()
    entry = checklists.catalogue_entry(db.session(), "payments-api")
    assert entry is not None
    number = max(v.version for v in entry.versions) + 1
    db.session.remove()
    write_version(directory, "payments-api", number)
    sync_versions(app, clock, directory, author="dev@example.com")
    version = checklists.get_version(db.session(), "payments-api", number)
    version_id, sha256 = version.id, version.sha256
    others = _other_versions(version_id)
    path = f"/review/{emailed('review', 'review_request')[BOARD]}"

    def observe() -> object:
        db.session.remove()
        stored = db.session.get(ChecklistVersion, version_id)
        assert stored is not None
        found = {
            "version": row(stored, drop=["version", "sha256", "content", "source_yaml"]),
            "unchanged": stored.sha256 == sha256,
            "reviews": rows(
                sa.select(GovernanceReview).where(
                    GovernanceReview.checklist_version_id == version_id
                )
            ),
            "links": rows(
                sa.select(ReviewLink).where(ReviewLink.checklist_version_id == version_id),
                drop=["nonce_hash"],
            ),
        }
        found["others_unchanged"] = _other_versions(version_id) == others
        db.session.remove()
        return normalized(found, [(f"checklists-{key}", "<dir>")])

    form = {"action": "approve", "consulted": "Dana and Malik", "notes": "Fine"}
    return Target(client(app), path, form, observe)


def _report(app: Flask, clock: FixedClock, key: str) -> Target:
    _package(app, clock, key)
    sign(clock, key)
    release(app, clock, key)
    db.session.remove()
    path = f"/report/{emailed('report', about=key)['settlement-lead@example.com']}"

    def observe() -> object:
        outcome = package_outcome(key)
        db.session.remove()
        package_id = db.session.scalar(sa.select(Package.id).where(Package.key == key))
        found = rows(sa.select(Finding).where(Finding.package_id == package_id))
        db.session.remove()
        return {"package": outcome, "findings": normalized(found, [(key, "<key>")])}

    form = {
        "application": "payments-api",
        "what_happened": "Refunds stayed queued",
        "impact": "Customers waited",
        "impact_level": "medium",
        "could_have_caught": "A large refund scenario",
    }
    return Target(client(app), path, form, observe)


def _confirm(app: Flask, clock: FixedClock, key: str) -> Target:
    # Both twins are released at the same moment, and asked a day later.
    clock.set(START)
    _package(app, clock, key)
    sign(clock, key)
    release(app, clock, key)
    clock.set(clock.now() + timedelta(hours=24))
    with unit_of_work(db.session()) as session:
        confirmations.send_confirmation_requests(
            session, settings=runtime(app).governance_settings(), clock=clock
        )
    db.session.remove()
    path = f"/confirm/{emailed('confirm', about=key)['settlement-lead@example.com']}"

    def observe() -> object:
        outcome = package_outcome(key)
        db.session.remove()
        package_id = db.session.scalar(sa.select(Package.id).where(Package.key == key))
        asked = rows(
            sa.select(ConfirmationLink).where(ConfirmationLink.package_id == package_id),
            drop=("nonce_hash",),
        )
        db.session.remove()
        return {"package": outcome, "asked": normalized(asked, [(key, "<key>")])}

    return Target(client(app), path, {"answer": "works"}, observe)


def _proposals_after(newest: int) -> Callable[[], object]:
    """The proposals made after `newest` (the twin's own), as stored."""

    def observe() -> object:
        db.session.remove()
        found = rows(sa.select(ScenarioProposal).where(ScenarioProposal.id > newest))
        db.session.remove()
        return found

    return observe


def _newest_proposal() -> int:
    db.session.remove()
    newest = db.session.scalar(sa.select(sa.func.max(ScenarioProposal.id))) or 0
    db.session.remove()
    return newest


PROPOSAL = {"scenario": "Refund a split payment", "notes": "Every Friday"}


def _propose_on_signoff(app: Flask, clock: FixedClock, key: str) -> Target:
    _package(app, clock, key)
    path = _signoff_path("settlement-lead@example.com")
    browser = client(app)
    request_id = re.search(r'name="request" value="(\d+)"', browser.get(path).text)
    assert request_id is not None
    form = {**PROPOSAL, "request": request_id.group(1)}
    return Target(browser, f"{path}/propose", form, _proposals_after(_newest_proposal()))


def _propose_on_confirmation(app: Flask, clock: FixedClock, key: str) -> Target:
    newest = _newest_proposal()
    confirm = _confirm(app, clock, key)
    path = f"{confirm.path}/propose"
    return Target(confirm.browser, path, dict(PROPOSAL), _proposals_after(newest))


def _decline_proposal(app: Flask, clock: FixedClock, key: str) -> Target:
    with unit_of_work(db.session()) as session:
        proposal_id = add_proposal(session, clock).id
    path = f"/governance/proposals/{proposal_id}/decline"
    form = {"rationale": "Item exports-ok covers it"}
    return Target(sign_in(app, ADMIN), path, form, _proposals_after(proposal_id - 1))


def _open_finding(clock: FixedClock, key: str) -> int:
    """An open finding on payments-api (its reviewer: BOARD), as a report files it."""
    with unit_of_work(db.session()) as session:
        found = Finding(
            application_id=session.scalar(
                sa.select(Application.id).where(Application.slug == "payments-api")
            ),
            what_happened=f"Refunds stayed queued ({key})",
            impact="Customers waited",
            could_have_caught="A large refund scenario",
            state="open",
            reported_at=clock.now(),
            rationale="",
        )
        session.add(found)
        session.flush()
        return found.id


def _finding_outcome(finding_id: int, key: str) -> Callable[[], object]:
    """The finding, its triage links and the finding and triage-link events."""

    def observe() -> object:
        db.session.remove()
        stored = db.session.get(Finding, finding_id)
        events = db.session.scalars(
            sa.select(AuditEvent.action).where(
                AuditEvent.action.startswith("finding.") | AuditEvent.action.startswith("triage")
            )
        ).all()
        links = rows(
            sa.select(TriageLink).where(TriageLink.finding_id == finding_id), drop=["nonce_hash"]
        )
        outcome = {"finding": row(stored), "events": sorted(set(events)), "links": links}
        db.session.remove()
        return normalized(outcome, [(key, "<key>")])

    return observe


TRIAGE_FORM = {"classification": "uncovered", "rationale": "Add a large refund scenario"}


def _finding(app: Flask, clock: FixedClock, key: str) -> Target:
    finding_id = _open_finding(clock, key)
    path = f"/governance/findings/{finding_id}"
    return Target(sign_in(app, REVIEWER), path, TRIAGE_FORM, _finding_outcome(finding_id, key))


def _triage(app: Flask, clock: FixedClock, key: str) -> Target:
    finding_id = _open_finding(clock, key)
    with unit_of_work(db.session()) as session:
        findings.issue_triage_links(
            session,
            session.get_one(Finding, finding_id),
            settings=runtime(app).governance_settings(),
            clock=clock,
        )
    db.session.remove()
    path = f"/review/findings/{emailed('review/findings', about=key)[BOARD]}"
    return Target(client(app), path, TRIAGE_FORM, _finding_outcome(finding_id, key))


def _email_triage_links(app: Flask, clock: FixedClock, key: str) -> Target:
    finding_id = _open_finding(clock, key)
    path = f"/governance/findings/{finding_id}/links"
    return Target(sign_in(app, REVIEWER), path, {}, _finding_outcome(finding_id, key))


def _remind_reviewers(app: Flask, clock: FixedClock, key: str) -> Target:
    db.session.remove()
    newest = db.session.scalar(sa.select(sa.func.max(ReviewLink.id))) or 0
    db.session.remove()

    def observe() -> object:
        db.session.remove()
        found = {
            "issued": rows(
                sa.select(ReviewLink).where(ReviewLink.id > newest), drop=["nonce_hash"]
            ),
            "versions": db.session.execute(
                sa.select(ChecklistVersion.version, ChecklistVersion.state, ChecklistVersion.sha256)
            ).all(),
            "reviews": db.session.scalar(sa.select(sa.func.count()).select_from(GovernanceReview)),
        }
        db.session.remove()
        return found

    path = "/governance/checklists/payments-api/remind"
    return Target(sign_in(app, REVIEWER), path, {}, observe)


def _retry(app: Flask, clock: FixedClock, key: str) -> Target:
    with unit_of_work(db.session()) as session:
        message_id = dead_letter(session, clock, subject=f"Sign-off needed ({key})", attempts=3).id

    def observe() -> object:
        db.session.remove()
        found = normalized(row(db.session.get(OutboxMessage, message_id)), [(key, "<key>")])
        db.session.remove()
        return found

    return Target(sign_in(app, ADMIN), f"/outbox/{message_id}/retry", {}, observe)


def _account(email: str, browser: FlaskClient | None = None) -> Callable[[], object]:
    """A staff account, its sign-in links and, when given a browser, what its session reaches."""

    def observe() -> object:
        db.session.remove()
        user = db.session.scalar(sa.select(User).where(User.email == email))
        assert user is not None
        found = {
            "user": row(user, drop=["email", "name"]),
            "links": rows(
                sa.select(SignInLink).where(SignInLink.user_id == user.id), drop=["nonce_hash"]
            ),
        }
        db.session.remove()
        if browser is not None:
            found["reaches"] = {
                path: browser.get(path).status_code for path in ("/", "/outbox/", "/governance")
            }
        return found

    return observe


# Two accounts of the same role, one per twin.
TWIN_MANAGERS = {"plain": MANAGER, "attacked": OTHER_MANAGER}


def _login(app: Flask, clock: FixedClock, key: str) -> Target:
    email = TWIN_MANAGERS[key.rsplit("-", 1)[1]]
    return Target(client(app), "/login", {"email": email}, _account(email))


def _sign_in(app: Flask, clock: FixedClock, key: str) -> Target:
    email = TWIN_MANAGERS[key.rsplit("-", 1)[1]]
    browser = client(app)
    path = path_of(sign_in_url(app, email))
    assert browser.get(path).status_code == 200
    return Target(browser, path, {}, _account(email, browser))


def _logout(app: Flask, clock: FixedClock, key: str) -> Target:
    email = TWIN_MANAGERS[key.rsplit("-", 1)[1]]
    browser = sign_in(app, email)
    return Target(browser, "/logout", {}, _account(email, browser))


def _twin_account(key: str, *, active: bool = True) -> tuple[str, int]:
    """A release manager's account of this twin's own, for an admin to act on."""
    email = f"staff-{key.rsplit('-', 1)[1]}@example.com"
    with unit_of_work(db.session()) as session:
        created = users.add_user(
            session, email=email, name="Twin", role=users.RELEASE_MANAGER, clock=FixedClock(START)
        )
        if not active:
            users.deactivate_user(session, email, clock=FixedClock(START))
        user_id = created.id
    return email, user_id


def _add_account(app: Flask, clock: FixedClock, key: str) -> Target:
    email = f"new-{key.rsplit('-', 1)[1]}@example.com"
    form = {"email": email, "name": "New", "role": users.RELEASE_MANAGER}
    return Target(sign_in(app, ADMIN), "/users/", form, _account(email))


def _account_action(action: str, *, active: bool) -> Callable[..., Target]:
    def prepare(app: Flask, clock: FixedClock, key: str) -> Target:
        email, user_id = _twin_account(key, active=active)
        return Target(sign_in(app, ADMIN), f"/users/{user_id}/{action}", {}, _account(email))

    return prepare


# A public address written as a literal: the guard passes it without a DNS look-up, and no
# worker runs here, so nothing is ever posted to it.
RECEIVER = "http://8.8.8.8/hooks/"


def _subscriptions(url: str) -> Callable[[], object]:
    def observe() -> object:
        db.session.remove()
        query = sa.select(WebhookSubscription).where(WebhookSubscription.url == url)
        found = rows(query, drop=["id", "secret_sealed"])
        db.session.remove()
        return normalized(found, [(url, "<url>")])

    return observe


def _twin_subscription(app: Flask, clock: FixedClock, key: str) -> tuple[str, int]:
    url = RECEIVER + key
    with unit_of_work(db.session()) as session:
        subscription, _ = webhooks.add_subscription(
            session,
            url=url,
            events=[webhooks.PACKAGE_RELEASED],
            actor=ADMIN,
            clock=clock,
            settings=runtime(app).webhook_settings(),
        )
        number = subscription.id
    return url, number


def _add_webhook(app: Flask, clock: FixedClock, key: str) -> Target:
    url = RECEIVER + key
    form = {"url": url, "events": webhooks.PACKAGE_RELEASED}
    return Target(sign_in(app, ADMIN), "/webhooks/", form, _subscriptions(url))


def _webhook_action(action: str) -> Callable[..., Target]:
    def prepare(app: Flask, clock: FixedClock, key: str) -> Target:
        url, number = _twin_subscription(app, clock, key)
        return Target(sign_in(app, ADMIN), f"/webhooks/{number}/{action}", {}, _subscriptions(url))

    return prepare


def _absences(person: str, *, after: datetime | None = None) -> Callable[[], object]:
    """The person's absences (those not over by `after`, when given)."""

    def observe() -> object:
        db.session.remove()
        query = sa.select(Absence).where(Absence.person == person)
        if after is not None:
            query = query.where(Absence.ends_at > after)
        found = rows(query, drop=["id"])
        db.session.remove()
        return normalized(found, [(person, "<person>")])

    return observe


def _calendar_keys(email: str) -> Callable[[], object]:
    def observe() -> object:
        db.session.remove()
        query = sa.select(CalendarKey).where(CalendarKey.owner == email)
        found = rows(query, drop=["id", "key_hash"])
        db.session.remove()
        return normalized(found, [(email, "<owner>")])

    return observe


def _twin_person(key: str) -> str:
    return f"away-{key.rsplit('-', 1)[1]}@example.com"


def _record_absence(app: Flask, clock: FixedClock, key: str) -> Target:
    person = _twin_person(key)
    form = {"email": person, "starts": "2026-12-01", "until": "2026-12-10", "note": "leave"}
    return Target(sign_in(app, MANAGER), "/people/", form, _absences(person))


def _end_absence(app: Flask, clock: FixedClock, key: str) -> Target:
    person = _twin_person(key)
    with unit_of_work(db.session()) as session:
        absence = deputies.record_absence(
            session,
            person=person,
            starts_at=clock.now(),
            ends_at=clock.now() + timedelta(days=3),
            note="",
            actor=MANAGER,
            clock=clock,
            links=runtime(app).link_settings(),
        )
        number = absence.id
    return Target(sign_in(app, MANAGER), f"/people/{number}/end", {}, _absences(person))


def _away_from_link(app: Flask, clock: FixedClock, key: str) -> Target:
    # Both twins' links are raj's: the plain twin's absence ends before the attacked twin's
    # link is prepared, so each twin records one absence of its own.
    with unit_of_work(db.session()) as session:
        if deputies.away_until(session, "raj@example.com", clock.now()) is not None:
            deputies.person_back(
                session,
                "raj@example.com",
                actor=MANAGER,
                clock=clock,
                links=runtime(app).link_settings(),
            )
    _package(app, clock, key)
    path = _signoff_path("raj@example.com") + "/away"
    form = {"until": "2026-12-10", "note": "leave"}

    current = _absences("raj@example.com", after=clock.now())
    return Target(client(app), path, form, lambda: (package_outcome(key), current()))


def _calendar_key_action(path: str, *, existing: bool) -> Callable[..., Target]:
    def prepare(app: Flask, clock: FixedClock, key: str) -> Target:
        email, _ = _twin_account(key, active=True)
        if existing:
            with unit_of_work(db.session()) as session:
                calendar_feed.create_key(session, email, clock=clock)
        return Target(sign_in(app, email), path, {}, _calendar_keys(email))

    return prepare


# endpoint -> (app, clock, twin key) -> the twin's target. Every browser POST has one.
# --- learning reviews -----------------------------------------------------------------------------


def _review_outcome(key: str) -> Callable[[], object]:
    """The package's learning reviews with their timeline entries and action items."""

    def observe() -> object:
        db.session.remove()
        found = [
            {
                "review": row(review),
                "entries": [row(e) for e in review.entries],
                "items": [row(i, drop=["finding_ids"]) for i in review.action_items],
            }
            for review in db.session.scalars(
                sa.select(LearningReview)
                .join(Package, Package.id == LearningReview.package_id)
                .where(Package.key == key)
            )
        ]
        db.session.remove()
        return normalized(found, [(key, "<key>")])

    return observe


def _open_learning_review(app: Flask, clock: FixedClock, key: str) -> Target:
    _package(app, clock, key)
    form = {"package": key, "application": "payments-api", "reason": "Refunds stalled"}
    return Target(sign_in(app, MANAGER), "/learning-reviews/open", form, _review_outcome(key))


def _learning_form(
    action: str, form: dict[str, str], *, item: bool = False
) -> Callable[[Flask, FixedClock, str], Target]:
    def prepare(app: Flask, clock: FixedClock, key: str) -> Target:
        _package(app, clock, key)
        with unit_of_work(db.session()) as session:
            review = learning_reviews.open_by_hand(
                session,
                key,
                "payments-api",
                reason="Refunds stalled",
                actor=MANAGER,
                now=clock.now(),
            )
            path = f"/learning-reviews/{review.id}/{action}"
            if item:
                added = learning_reviews.add_action_item(
                    session,
                    review,
                    title="Monitor refunds",
                    owner="payments-team@example.com",
                    due_at=clock.now() + timedelta(days=3),
                    kind="tooling",
                    actor=MANAGER,
                    now=clock.now(),
                )
                path = f"/learning-reviews/{review.id}/items/{added.id}/{action}"
        db.session.remove()
        return Target(sign_in(app, MANAGER), path, form, _review_outcome(key))

    return prepare


FORM_CASES: dict[str, Callable[[Flask, FixedClock, str], Target]] = {
    "packages.new": _new_package,
    "packages.edit": _edit,
    "packages.submit": _package_action("submit", submit=False),
    "packages.cancel": _package_action("cancel"),
    "packages.remind": _package_action("remind"),
    "packages.release": _release,
    "packages.emergency": _declare,
    "emergencies.approve": _approve_emergency,
    "governance.finding": _finding,
    "governance.remind": _remind_reviewers,
    "governance.email_triage_links": _email_triage_links,
    "learning.open_review": _open_learning_review,
    "learning.statement": _learning_form(
        "statement", {"statement": "Refunds stalled", "factors": "", "intent": "save"}
    ),
    "learning.add_entry": _learning_form(
        "entries", {"occurred_at": "2026-11-20T09:30", "text": "The desk noticed"}
    ),
    "learning.add_item": _learning_form(
        "items",
        {
            "title": "Alert on queued refunds",
            "owner": "payments-team@example.com",
            "due_on": "2026-12-01",
            "kind": "tooling",
            "findings": "",
        },
    ),
    "learning.close_item": _learning_form(
        "close", {"action": "drop", "rationale": "Covered by the monitor"}, item=True
    ),
    "outbox.retry": _retry,
    "signoffs.decide": _decide,
    "signoffs.resend": _resend,
    "signoffs.away": _away_from_link,
    "people.record": _record_absence,
    "people.end": _end_absence,
    "reviews.decide": _review,
    "reviews.triage": _triage,
    "reports.report": _report,
    "confirmations.confirm": _confirm,
    "signoffs.propose": _propose_on_signoff,
    "confirmations.propose": _propose_on_confirmation,
    "proposals.decline": _decline_proposal,
    "auth.login": _login,
    "auth.sign_in": _sign_in,
    "auth.logout": _logout,
    "users.create": _add_account,
    "users.deactivate": _account_action("deactivate", active=True),
    "users.activate": _account_action("activate", active=False),
    "webhooks.create": _add_webhook,
    "webhooks.rotate": _webhook_action("rotate"),
    "webhooks.remove": _webhook_action("remove"),
    "calendar.create_key": _calendar_key_action("/calendar/key", existing=False),
    "calendar.revoke_key": _calendar_key_action("/calendar/key/revoke", existing=True),
}


def test_every_browser_form_has_a_mass_assignment_case(app: Flask) -> None:
    assert {rule.endpoint for rule in browser_post_rules(app)} == set(FORM_CASES)


def _send(target: Target, fields: dict[str, str] | None) -> TestResponse:
    token = fresh_csrf(target.browser)
    page = target.browser.get(target.path)
    if page.status_code == 200 and 'name="csrf_token"' in page.text:
        token = csrf(page.text)  # the form's own page, as a browser would have it
    body = {**target.form, "csrf_token": token}
    path = target.path
    if fields is not None:
        body = {**fields, **target.extra, **body}
        path += "?" + urlencode(fields)
    return target.browser.post(path, data=body)


@pytest.mark.parametrize("endpoint", sorted(FORM_CASES))
def test_browser_forms_ignore_server_decided_fields(
    app: Flask, base: None, clock: FixedClock, endpoint: str
) -> None:
    outcomes = {}
    for twin in TWINS:
        target = FORM_CASES[endpoint](app, clock, f"2026.11-mf-{twin}")
        fields = None
        if twin == "attacked":
            fields = as_form(injected_fields({*target.form, "csrf_token"}))
            assert {"state", "revision", "digest", "approved_at", "id"} <= (
                set(fields) | set(target.form)
            )
        response = _send(target, fields)
        assert response.status_code in (200, 201, 302), (twin, response.status_code, response.text)
        outcomes[twin] = (response.status_code, target.observe())
    assert_same_outcome(outcomes)
    assert_no_injected_value(outcomes["attacked"])
