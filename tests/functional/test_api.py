"""The JSON API over HTTP: the release flow, the gate's guarantees, auth, errors and the OpenAPI
document. Every call through `Api` is also checked against the document (status and schema)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import sqlalchemy as sa
from flask import Flask

from gatekeeper.cli import cli
from gatekeeper.db.base import db
from gatekeeper.db.models import ApiToken, Application, Package, PackageApplication, Signoff
from gatekeeper.db.unit_of_work import unit_of_work
from gatekeeper.domain import gate as gate_rules
from gatekeeper.domain import signoff
from gatekeeper.domain.clock import FixedClock
from gatekeeper.services import checklists, tokens, users
from tests.conftest import CHECKLIST_AUTHOR, SAMPLES, dispose, make_app
from tests.functional.api_helpers import (
    API_PREFIX,
    HTTP_METHODS,
    OPENAPI_ENDPOINT,
    RELEASE_MANAGER,
    Api,
    api_rules,
    assert_envelope,
    create_package,
    create_token,
    openapi_path,
    pending_count,
    pending_signers,
    recorded_statements,
    resolve,
    revoke_token,
    rule_methods,
    schema_validate,
    sign,
    sync_and_approve,
    write_checklists,
)
from tests.support.api_tokens import legacy_token

KEY = "2026.11-r3"
PACKAGES = f"{API_PREFIX}/packages"
NEW_PACKAGE = {
    "key": KEY,
    "title": "November release",
    "environment": "production",
    "planned_for": "2026-11-26",
    "applications": [
        {"application": "payments-api", "version": "7.4.0", "change_summary": "Refund queue"},
        {"application": "storefront-web", "version": "2026.11.2"},
    ],
}
# Fields a client must never set: they are decided by the lifecycle, the gate or the server.
SERVER_FIELDS: dict[str, object] = {
    "state": "released",
    "revision": 99,
    "digest": "sha256:" + "0" * 64,
    "approved_at": "2026-11-23T09:00:00+00:00",
    "assembled_by": "mallory@example.com",
}
FAKE_DIGEST = "sha256:" + "f" * 64
DEPLOYMENT = {
    "environment": "production",
    "applications": [{"application": "payments-api", "version": "7.4.0"}],
    "pipeline_url": "https://ci.example.com/pipelines/1",
}


@pytest.fixture
def api(app: Flask, clock: FixedClock) -> Api:
    sync_and_approve(SAMPLES, clock)
    return Api(app, create_token(clock, "ci-all"))


def _gate(api: Api, key: str = KEY) -> dict[str, Any]:
    response = api.get(f"{PACKAGES}/{key}/gate")
    assert response.status_code == 200, response.json
    body: dict[str, Any] = response.json  # type: ignore[assignment]
    return body


def _package(api: Api, key: str = KEY) -> dict[str, Any]:
    response = api.get(f"{PACKAGES}/{key}")
    assert response.status_code == 200, response.json
    body: dict[str, Any] = response.json  # type: ignore[assignment]
    return body


def _by_app(gate: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {a["application"]: a for a in gate["applications"]}


def _submitted(api: Api) -> dict[str, Any]:
    assert api.post(PACKAGES, json=NEW_PACKAGE).status_code == 201
    assert api.post(f"{PACKAGES}/{KEY}/submit").status_code == 200
    return _gate(api)


def _open_gate(api: Api, clock: FixedClock, *, except_signer: str | None = None) -> dict[str, Any]:
    _submitted(api)
    sign(clock, KEY, except_signer=except_signer)
    gate = _gate(api)
    assert gate["status"] == "open", gate["blockers"]
    return gate


# --- the release flow -------------------------------------------------------------------------


def test_full_flow_from_package_to_release(api: Api, clock: FixedClock) -> None:
    created = api.post(PACKAGES, json=NEW_PACKAGE)
    assert created.status_code == 201
    assert created.headers["Location"] == f"{PACKAGES}/{KEY}"
    assert created.json is not None
    assert created.json["state"] == "draft"
    assert created.json["revision"] == 0
    assert created.json["assembled_by"] == RELEASE_MANAGER
    assert api.get(created.headers["Location"]).json == created.json

    submitted = api.post(f"{PACKAGES}/{KEY}/submit")
    assert submitted.status_code == 200
    assert submitted.json is not None
    assert submitted.json["state"] == "in_review"
    assert submitted.json["revision"] == 1
    pinned = {a["application"]: a["checklist_version"] for a in submitted.json["applications"]}
    assert pinned == {"payments-api": 7, "storefront-web": 12}

    gate = _gate(api)
    assert gate["status"] == "pending"
    assert gate["package"] == KEY
    assert gate["revision"] == 1
    assert gate["progress"]["signed"] == 0
    assert gate["progress"]["required"] > 0
    assert gate["blockers"]
    waited = pending_signers(KEY)
    for blocker in gate["blockers"]:
        assert blocker["code"] in gate_rules.WAITING_CODES
        assert blocker["waiting_on"], f"a silent blocker: {blocker}"
        assert {(blocker["application"], p) for p in blocker["waiting_on"]} <= waited
    by_code = {(b["code"], b["application"], b["item"]): b for b in gate["blockers"]}
    user_validation = by_code["USER_VALIDATION_PENDING", "payments-api", None]
    assert user_validation["waiting_on"] == [
        "refunds-desk@example.com",
        "settlement-lead@example.com",
    ]
    artifacts = by_code["ITEM_PENDING", "payments-api", "artifacts-from-ci"]
    assert artifacts["waiting_on"] == ["ana@example.com", "raj@example.com"]
    assert set(gate["waiting_on"]) == {p for _, p in waited}

    requests = pending_count(KEY)
    assert sign(clock, KEY) == requests
    assert pending_count(KEY) == 0
    clock.advance(timedelta(minutes=5))
    gate = _gate(api)
    assert gate["status"] == "open"
    assert gate["blockers"] == []
    assert gate["progress"]["signed"] == gate["progress"]["required"]
    assert gate["digest"].startswith("sha256:")

    released = api.post(f"{PACKAGES}/{KEY}/release", json={"digest": gate["digest"], "notes": "ok"})
    assert released.status_code == 200, released.json
    assert released.json is not None
    package = released.json["package"]
    assert package["state"] == "released"
    assert package["release_digest"] == gate["digest"]
    assert package["released_by"] == "ci-all"
    assert package["released_at"] == clock.now().isoformat()
    assert released.json["gate"]["status"] == "open"
    assert _package(api)["state"] == "released"

    after = _gate(api)
    assert (after["state"], after["status"]) == ("released", "open")
    assert after["release"] == {
        "released_at": clock.now().isoformat(),
        "released_by": "ci-all",
        "digest": gate["digest"],
    }
    assert gate["state"] == "in_review"
    assert gate["release"] is None
    # A pipeline re-run gets an open gate, but the release is recorded once.
    again = api.post(f"{PACKAGES}/{KEY}/release", json={"digest": gate["digest"]})
    assert_envelope(again, 409, "conflict")
    once_more = api.post(f"{PACKAGES}/{KEY}/release", json={"digest": after["digest"]})
    assert "released cannot be released" in assert_envelope(once_more, 409, "conflict")["message"]
    assert _package(api) == package
    # Every answer of the flow was checked against the document.
    assert {op for op, _, _ in api.checked} >= {
        "createPackage",
        "getPackage",
        "submitPackage",
        "getGate",
        "releasePackage",
    }


def test_release_with_a_digest_made_stale_by_a_signoff(api: Api, clock: FixedClock) -> None:
    _submitted(api)
    # storefront-web needs 2 of its 3 key users: leave one out, the gate still opens.
    for application, signer in sorted(pending_signers(KEY)):
        if signer != "merch-planner@example.com":
            sign(clock, KEY, application=application, signer=signer)
    checked = _gate(api)
    assert checked["status"] == "open"

    assert sign(clock, KEY, signer="merch-planner@example.com") == 1
    now = _gate(api)
    assert now["status"] == "open"
    assert now["digest"] != checked["digest"]

    refused = api.post(f"{PACKAGES}/{KEY}/release", json={"digest": checked["digest"]})
    error = assert_envelope(refused, 409, "conflict")
    assert "stale" in error["message"]
    assert error["details"]["gate"] == now
    schema_validate(api.doc, "Gate", error["details"]["gate"])
    assert _package(api)["state"] == "in_review"
    assert api.post(f"{PACKAGES}/{KEY}/release", json={"digest": FAKE_DIGEST}).status_code == 409

    assert api.post(f"{PACKAGES}/{KEY}/release", json={"digest": now["digest"]}).status_code == 200


def test_release_with_a_digest_made_stale_by_an_edit(api: Api, clock: FixedClock) -> None:
    checked = _open_gate(api, clock)
    edited = api.patch(
        f"{PACKAGES}/{KEY}",
        json={
            "applications": [
                {"application": "payments-api", "version": "7.4.1", "change_summary": "hotfix"},
                {"application": "storefront-web", "version": "2026.11.2"},
            ]
        },
    )
    assert edited.status_code == 200
    pending = api.post(f"{PACKAGES}/{KEY}/release", json={"digest": checked["digest"]})
    error = assert_envelope(pending, 409, "conflict")
    assert error["details"]["gate"]["status"] == "pending"

    sign(clock, KEY)
    reopened = _gate(api)
    assert reopened["status"] == "open"
    assert reopened["revision"] == 2
    assert reopened["digest"] != checked["digest"]
    stale = api.post(f"{PACKAGES}/{KEY}/release", json={"digest": checked["digest"]})
    error = assert_envelope(stale, 409, "conflict")
    assert "stale" in error["message"]
    assert error["details"]["gate"]["digest"] == reopened["digest"]
    assert _package(api)["state"] == "in_review"


def test_release_while_the_gate_is_pending_lists_the_blockers(api: Api, clock: FixedClock) -> None:
    assert api.post(PACKAGES, json=NEW_PACKAGE).status_code == 201
    draft_gate = _gate(api)
    assert draft_gate["status"] == "pending"
    assert [b["code"] for b in draft_gate["blockers"]][:1] == ["PACKAGE_NOT_SUBMITTED"]
    draft = api.post(f"{PACKAGES}/{KEY}/release", json={"digest": draft_gate["digest"]})
    assert assert_envelope(draft, 409, "conflict")["details"]["gate"] == draft_gate

    assert api.post(f"{PACKAGES}/{KEY}/submit").status_code == 200
    sign(clock, KEY, application="payments-api")
    gate = _gate(api)
    assert gate["status"] == "pending"
    refused = api.post(f"{PACKAGES}/{KEY}/release", json={"digest": gate["digest"]})
    error = assert_envelope(refused, 409, "conflict")
    details_gate = error["details"]["gate"]
    assert details_gate == gate
    assert details_gate["blockers"]
    assert {b["application"] for b in details_gate["blockers"]} == {"storefront-web"}
    assert all(b["waiting_on"] for b in details_gate["blockers"])
    assert _package(api)["state"] == "in_review"


def test_a_failed_item_blocks_the_release(api: Api, clock: FixedClock) -> None:
    # Without raj every quorum is met, so the gate opens with raj's requests still open.
    checked = _open_gate(api, clock, except_signer="raj@example.com")
    assert ("payments-api", "raj@example.com") in pending_signers(KEY)
    failed = signoff.Decision(signoff.ITEM, signoff.FAIL, comment="the image is not from CI")
    assert sign(clock, KEY, signer="raj@example.com", item="artifacts-from-ci", decision=failed)
    gate = _gate(api)
    assert gate["status"] == "blocked"
    assert gate["blockers"][0]["code"] == "ITEM_FAILED"
    for digest in (checked["digest"], gate["digest"]):
        refused = api.post(f"{PACKAGES}/{KEY}/release", json={"digest": digest})
        assert assert_envelope(refused, 409, "conflict")["details"]["gate"]["status"] == "blocked"
    assert _package(api)["state"] == "in_review"


def test_a_cancelled_package_cannot_be_released_or_edited(api: Api, clock: FixedClock) -> None:
    gate = _open_gate(api, clock)
    cancelled = api.post(f"{PACKAGES}/{KEY}/cancel")
    assert cancelled.status_code == 200
    assert cancelled.json is not None
    assert cancelled.json["state"] == "cancelled"
    assert _gate(api)["status"] == "blocked"
    refused = api.post(f"{PACKAGES}/{KEY}/release", json={"digest": gate["digest"]})
    assert_envelope(refused, 409, "conflict")
    assert_envelope(api.patch(f"{PACKAGES}/{KEY}", json={"title": "again"}), 409, "conflict")
    assert_envelope(api.post(f"{PACKAGES}/{KEY}/submit"), 409, "conflict")
    assert_envelope(api.post(f"{PACKAGES}/{KEY}/cancel"), 409, "conflict")
    assert _package(api)["state"] == "cancelled"


# --- revisions --------------------------------------------------------------------------------


def test_edit_in_review_bumps_the_revision_and_carries_untouched_signoffs(
    api: Api, clock: FixedClock
) -> None:
    before = _open_gate(api, clock)
    signed_before = _by_app(before)
    assert all(a["carried_forward"] == 0 for a in signed_before.values())

    clock.advance(timedelta(hours=1))
    edited = api.patch(
        f"{PACKAGES}/{KEY}",
        json={
            "title": "November release, take two",
            "applications": [
                {"application": "payments-api", "version": "7.4.1", "change_summary": "hotfix"},
                {"application": "storefront-web", "version": "2026.11.2"},
            ],
        },
    )
    assert edited.status_code == 200
    assert edited.json is not None
    assert edited.json["revision"] == 2
    assert edited.json["title"] == "November release, take two"
    apps = {a["application"]: a for a in edited.json["applications"]}
    assert apps["payments-api"]["version"] == "7.4.1"
    assert apps["payments-api"]["changed_in_revision"] == 2
    assert apps["storefront-web"]["changed_in_revision"] == 1

    after = _gate(api)
    assert after["revision"] == 2
    assert after["status"] == "pending"
    progress = _by_app(after)
    payments, storefront = progress["payments-api"], progress["storefront-web"]
    assert payments["signed"] == 0
    assert payments["required"] == signed_before["payments-api"]["required"]
    assert payments["carried_forward"] == 0
    assert storefront["signed"] == signed_before["storefront-web"]["signed"]
    assert storefront["carried_forward"] == storefront["signed"] > 0
    assert (
        after["progress"]["signed"]
        == before["progress"]["signed"] - (signed_before["payments-api"]["signed"])
    )
    assert {b["application"] for b in after["blockers"]} == {"payments-api"}
    # The recorded sign-offs of the changed application are marked stale, the others are not.
    db.session.remove()
    stale = db.session.execute(
        sa.select(Application.slug, Signoff.stale_since_revision)
        .join(PackageApplication, PackageApplication.id == Signoff.package_application_id)
        .join(Application, Application.id == PackageApplication.application_id)
    ).all()
    assert {(slug, since) for slug, since in stale} == {
        ("payments-api", 2),
        ("storefront-web", None),
    }
    # New requests went out for the changed application only.
    assert {a for a, _ in pending_signers(KEY)} == {"payments-api"}
    assert ("payments-api", "settlement-lead@example.com") in pending_signers(KEY)

    unchanged = api.patch(f"{PACKAGES}/{KEY}", json={"title": "Only the title"})
    assert unchanged.status_code == 200
    assert unchanged.json is not None
    assert unchanged.json["revision"] == 2


# --- error envelopes --------------------------------------------------------------------------

BODY_ENDPOINTS = [
    ("POST", PACKAGES),
    ("PATCH", f"{PACKAGES}/{KEY}"),
    ("POST", f"{PACKAGES}/{KEY}/release"),
]
BAD_BODIES: list[tuple[str, str | bytes, str]] = [
    ("malformed", "{not json", "application/json"),
    ("truncated", '{"key": "x"', "application/json"),
    ("empty", "", "application/json"),
    ("not-utf8", b'{"title": "\xff\xfe"}', "application/json"),
    ("deeply-nested", "[" * 100_000 + "]" * 100_000, "application/json"),
    ("huge-integer", '{"title": ' + "9" * 5000 + "}", "application/json"),
    ("array", "[1, 2]", "application/json"),
    ("string", '"a string"', "application/json"),
    ("number", "42", "application/json"),
    ("null", "null", "application/json"),
    ("text-plain", '{"title": "x"}', "text/plain"),
    ("form", "title=x", "application/x-www-form-urlencoded"),
]


@pytest.mark.parametrize(("method", "path"), BODY_ENDPOINTS)
def test_bad_bodies_get_the_envelope_and_change_nothing(
    api: Api, clock: FixedClock, method: str, path: str
) -> None:
    _submitted(api)
    package = _package(api)
    gate = _gate(api)
    for name, data, content_type in BAD_BODIES:
        response = api.call(method, path, data=data, content_type=content_type)
        assert response.status_code in (400, 415, 422), (name, response.status_code)
        assert_envelope(response)
    assert _package(api) == package
    assert _gate(api) == gate


def test_wrong_content_type_is_422_validation_failed(api: Api) -> None:
    response = api.post(PACKAGES, data='{"key": "a"}', content_type="text/plain")
    assert (
        "Content-Type: application/json"
        in assert_envelope(response, 422, "validation_failed")["message"]
    )
    non_object = api.post(PACKAGES, json=["a"])
    assert_envelope(non_object, 422, "validation_failed")


def test_http_errors_on_api_paths_get_the_envelope(api: Api, clock: FixedClock) -> None:
    _submitted(api)
    assert_envelope(api.call("DELETE", f"{PACKAGES}/{KEY}"), 405)
    assert_envelope(api.call("PUT", PACKAGES, json=NEW_PACKAGE), 405)
    assert_envelope(api.get(f"{API_PREFIX}/no-such-thing"), 404, "not_found")
    too_large = {"title": "x" * (1024 * 1024)}
    assert_envelope(api.patch(f"{PACKAGES}/{KEY}", json=too_large), 413)
    assert _package(api)["title"] == NEW_PACKAGE["title"]


def test_schema_errors_name_the_field(api: Api) -> None:
    body = {**NEW_PACKAGE, "key": "../etc", "applications": [{"application": "payments-api"}]}
    error = assert_envelope(api.post(PACKAGES, json=body), 422, "validation_failed")
    fields = {d["field"] for d in error["details"]}
    assert fields == {"key", "applications/0"}
    assert api.get(f"{PACKAGES}/..%2Fetc").status_code == 404


@pytest.mark.parametrize("field", sorted(SERVER_FIELDS))
def test_server_decided_fields_are_refused(api: Api, clock: FixedClock, field: str) -> None:
    value = SERVER_FIELDS[field]
    created = api.post(PACKAGES, json={**NEW_PACKAGE, field: value})
    error = assert_envelope(created, 422, "validation_failed")
    assert field in str(error["details"])
    assert_envelope(api.get(f"{PACKAGES}/{KEY}"), 404, "not_found")

    _submitted(api)
    package = _package(api)
    gate = _gate(api)
    edited = api.patch(f"{PACKAGES}/{KEY}", json={"title": "Sneaky", field: value})
    assert_envelope(edited, 422, "validation_failed")
    app_entry = {"application": "payments-api", "version": "9", field: value}
    nested = api.patch(f"{PACKAGES}/{KEY}", json={"applications": [app_entry]})
    assert_envelope(nested, 422, "validation_failed")
    if field != "digest":  # the one of these fields a release legitimately carries
        release = {"digest": gate["digest"], field: value}
        released = api.post(f"{PACKAGES}/{KEY}/release", json=release)
        assert_envelope(released, 422, "validation_failed")
    assert _package(api) == package
    assert _gate(api) == gate


def test_package_creation_errors(api: Api, app: Flask, clock: FixedClock) -> None:
    assert api.post(PACKAGES, json=NEW_PACKAGE).status_code == 201
    assert_envelope(api.post(PACKAGES, json=NEW_PACKAGE), 409, "conflict")
    unknown_app = {
        **NEW_PACKAGE,
        "key": "other",
        "applications": [{"application": "nope", "version": "1"}],
    }
    assert "nope" in assert_envelope(api.post(PACKAGES, json=unknown_app), 422)["message"]
    bad_date = {**NEW_PACKAGE, "key": "other", "planned_for": "2026-13-45"}
    assert_envelope(api.post(PACKAGES, json=bad_date), 422, "validation_failed")
    twice = {
        **NEW_PACKAGE,
        "key": "other",
        "applications": [{"application": "payments-api", "version": "1"}] * 2,
    }
    assert_envelope(api.post(PACKAGES, json=twice), 422, "validation_failed")
    empty = {**NEW_PACKAGE, "key": "empty", "applications": []}
    assert api.post(PACKAGES, json=empty).status_code == 201
    assert_envelope(api.post(f"{PACKAGES}/empty/submit"), 422, "validation_failed")
    # `tokens create` refuses such a token now; one issued before it did still cannot write.
    with unit_of_work(db.session) as session:
        secret = legacy_token(
            session, name="no-owner", scopes=tokens.SCOPES, owner=None, clock=clock
        )
    refused = Api(app, secret).post(PACKAGES, json={**NEW_PACKAGE, "key": "other"})
    assert_envelope(refused, 403, "permission_denied")
    assert api.get(f"{PACKAGES}/other").status_code == 404


def _fill(rule_path: str, key: str = KEY, application: str = "payments-api") -> str:
    return rule_path.replace("<key>", key).replace("<application>", application)


def test_unknown_package_or_application_is_404_on_every_endpoint(api: Api, app: Flask) -> None:
    bodies = {"POST": {"digest": FAKE_DIGEST}, "PATCH": {"title": "x"}}
    # A body the endpoint accepts, so what answers is the unknown package.
    bodies_of = {"api.record_deployment": DEPLOYMENT, "api.declare_emergency": {"reason": "x"}}
    seen = 0
    for rule in api_rules(app):
        if not rule.arguments:
            continue
        for method in rule_methods(rule):
            path = _fill(rule.rule, key="no-such-package", application="no-such-app")
            body = bodies_of.get(rule.endpoint, bodies.get(method.upper()))
            response = api.call(method.upper(), path, json=body)
            error = assert_envelope(response, 404, "not_found")
            assert "no-such" in error["message"]
            seen += 1
    assert seen >= 7


# --- authentication and scopes ----------------------------------------------------------------


def _every_operation(app: Flask) -> list[tuple[str, str, str]]:
    """(method, filled path, endpoint) of every API operation, from the URL map."""
    return [
        (method.upper(), _fill(rule.rule), rule.endpoint)
        for rule in sorted(api_rules(app), key=lambda r: r.rule)
        for method in sorted(rule_methods(rule))
    ]


def test_no_api_answer_may_be_stored_by_a_cache(api: Api, app: Flask, clock: FixedClock) -> None:
    """One pipeline's gate must never be served to another by a proxy: every /api/v1 answer,
    success or error, says `Cache-Control: no-store`."""
    _open_gate(api, clock)
    answers = [
        api.call(method, path, json={"title": "x"} if method == "PATCH" else None)
        for method, path, _ in _every_operation(app)
        if method in ("GET", "PATCH")
    ]
    answers += [
        api.get(f"{PACKAGES}/{KEY}/gate", anonymous=True),  # 401
        api.get(f"{PACKAGES}/nope/gate"),  # 404
        api.post(f"{PACKAGES}/{KEY}/release", json={"digest": FAKE_DIGEST}),  # 409
        api.post(PACKAGES, json={"key": KEY}),  # 422
        api.client.get(f"{API_PREFIX}/no-such-endpoint"),  # 404 from routing
        api.get(f"{API_PREFIX}/openapi.json", anonymous=True),
    ]
    assert len(answers) >= 10
    assert {r.status_code for r in answers} >= {200, 401, 404, 409, 422}
    for response in answers:
        assert response.headers.get("Cache-Control") == "no-store", (
            response.request.path,
            response.status_code,
        )


def test_every_api_view_requires_a_scope(app: Flask) -> None:
    for rule in api_rules(app):
        scope = getattr(app.view_functions[rule.endpoint], "required_scope", None)
        assert scope in tokens.SCOPES, f"{rule.rule} is not protected by requires(scope)"


def test_missing_and_invalid_tokens_are_401_everywhere(
    api: Api, app: Flask, clock: FixedClock
) -> None:
    _submitted(api)
    package = _package(api)
    create_token(clock, "soon-revoked")
    revoked = create_token(clock, "revoked")
    revoke_token(clock, "revoked")
    valid = api.token
    assert valid is not None
    bad_headers: list[dict[str, str]] = [
        {},
        {"Authorization": ""},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer "},
        {"Authorization": "Bearer nonsense"},
        {"Authorization": "Bearer gk_"},
        {"Authorization": "Bearer gk_unknown-token"},
        {"Authorization": "Bearer " + valid + "x"},
        {"Authorization": "Bearer " + valid[:-1]},
        {"Authorization": "Bearer gk_" + "a" * 5000},
        {"Authorization": "Basic " + valid},
        {"Authorization": valid},
        {"Authorization": "Token " + valid},
        {"Authorization": "Bearer " + revoked},
        {"Authorization": "Bearer " + valid.removeprefix("gk_")},
        {"X-Api-Token": valid},
    ]
    for method, path, _ in _every_operation(app):
        for headers in bad_headers:
            response = api.call(method, path, anonymous=True, headers=headers)
            assert_envelope(response, 401, "unauthenticated")
        in_query = api.call(method, f"{path}?access_token={valid}&token={valid}", anonymous=True)
        assert_envelope(in_query, 401, "unauthenticated")
    assert _package(api) == package
    # Unknown, malformed and revoked tokens are indistinguishable.
    messages = {
        api.get(PACKAGES + f"/{KEY}", token=t).json["error"]["message"]  # type: ignore[index]
        for t in (revoked, "gk_unknown", "nonsense")
    }
    assert len(messages) == 1


def test_a_token_revoked_after_use_stops_working(api: Api, clock: FixedClock) -> None:
    secret = create_token(clock, "poller", [tokens.SCOPE_GATE_READ])
    assert api.get(f"{API_PREFIX}/checklists", token=secret).status_code == 200
    # The scheme is case-insensitive (RFC 9110).
    lower = api.get(f"{API_PREFIX}/checklists", headers={"Authorization": f"bearer {secret}"})
    assert lower.status_code == 200
    revoke_token(clock, "poller")
    assert_envelope(api.get(f"{API_PREFIX}/checklists", token=secret), 401, "unauthenticated")
    assert api.get(f"{API_PREFIX}/checklists").status_code == 200


def test_a_token_revoked_by_another_process_stops_working_at_once(
    api: Api, app: Flask, clock: FixedClock, database_url: str, tmp_path: Path
) -> None:
    """Each server process keeps the tokens it authenticated; a revocation made anywhere else
    (here the CLI of another process) must still refuse the next request."""
    secret = create_token(clock, "poller", [tokens.SCOPE_GATE_READ])
    for _ in range(2):  # the second answer comes from this process's cache
        assert api.get(f"{API_PREFIX}/checklists", token=secret).status_code == 200
    other = make_app(database_url, tmp_path / "other", clock)
    try:
        with other.app_context():
            revoked = other.test_cli_runner().invoke(cli, ["tokens", "revoke", "poller"])
            assert revoked.exit_code == 0, revoked.output
    finally:
        dispose(other)
    assert_envelope(api.get(f"{API_PREFIX}/checklists", token=secret), 401, "unauthenticated")


def test_deactivating_an_owner_stops_their_tokens_at_once_in_every_process(
    api: Api, app: Flask, clock: FixedClock, database_url: str, tmp_path: Path
) -> None:
    """This process keeps the tokens it authenticated; the owner's deactivation, made by another
    process, refuses their next request. Activating the account again does not revive them."""
    reader = create_token(clock, "poller", [tokens.SCOPE_GATE_READ])
    for key in ("2026.12-a", "2026.12-b"):  # the second answer comes from this process's cache
        assert api.post(PACKAGES, json={**NEW_PACKAGE, "key": key}).status_code == 201
        assert api.get(f"{API_PREFIX}/checklists", token=reader).status_code == 200
    other = make_app(database_url, tmp_path / "other", clock)
    try:
        with other.app_context():
            done = other.test_cli_runner().invoke(cli, ["users", "deactivate", RELEASE_MANAGER])
            assert done.exit_code == 0, done.output
            assert "API tokens are revoked" in done.stdout
        refused = api.post(PACKAGES, json={**NEW_PACKAGE, "key": "2026.12-c"})
        assert_envelope(refused, 401, "unauthenticated")
        assert_envelope(api.get(f"{API_PREFIX}/checklists", token=reader), 401, "unauthenticated")
        with other.app_context():
            again = other.test_cli_runner().invoke(cli, ["users", "activate", RELEASE_MANAGER])
            assert again.exit_code == 0, again.output
            assert "tokens stay revoked" in again.stdout
    finally:
        dispose(other)
    assert_envelope(api.get(f"{API_PREFIX}/checklists", token=reader), 401, "unauthenticated")
    revoked = db.session.scalars(sa.select(ApiToken.revoked_at).order_by(ApiToken.name)).all()
    assert revoked == [clock.now(), clock.now()]
    assert api.get(f"{PACKAGES}/2026.12-c", token=create_token(clock, "new")).status_code == 404


def test_a_token_whose_owner_lost_their_account_or_role_is_refused(
    api: Api, clock: FixedClock
) -> None:
    """Tokens issued before `tokens create` checked owners: the check on each request stands."""
    with unit_of_work(db.session) as session:
        users.add_user(
            session,
            email="board@example.com",
            name="Board",
            role=users.GOVERNANCE_REVIEWER,
            clock=clock,
        )
        stranger = legacy_token(
            session, name="stranger", scopes=tokens.SCOPES, owner="left@example.com", clock=clock
        )
        reviewer = legacy_token(
            session, name="reviewer", scopes=tokens.SCOPES, owner="board@example.com", clock=clock
        )
    assert_envelope(api.get(f"{API_PREFIX}/checklists", token=stranger), 401, "unauthenticated")
    assert api.get(f"{API_PREFIX}/checklists", token=reviewer).status_code == 200
    refused = assert_envelope(api.post(PACKAGES, json=NEW_PACKAGE, token=reviewer), 403)
    assert "board@example.com is a governance_reviewer" in refused["message"]
    assert api.get(f"{PACKAGES}/{KEY}").status_code == 404


def test_each_endpoint_refuses_a_token_without_its_scope(
    api: Api, app: Flask, clock: FixedClock
) -> None:
    _submitted(api)
    sign(clock, KEY)
    package = _package(api)
    gate = _gate(api)
    assert gate["status"] == "open"
    lacking = {
        scope: create_token(clock, f"without-{scope}", [s for s in tokens.SCOPES if s != scope])
        for scope in tokens.SCOPES
    }
    only = {scope: create_token(clock, f"only-{scope}", [scope]) for scope in tokens.SCOPES}
    bodies = {
        "api.create_package": {**NEW_PACKAGE, "key": "another"},
        "api.edit_package": {"title": "changed"},
        "api.release_package": {"digest": gate["digest"]},
    }
    operations = _every_operation(app)
    assert len(operations) >= 9
    for method, path, endpoint in operations:
        scope = app.view_functions[endpoint].required_scope
        body = bodies.get(endpoint)
        refused = [lacking[scope]] + [t for s, t in only.items() if s != scope]
        for secret in refused:
            response = api.call(method, path, token=secret, json=body)
            error = assert_envelope(response, 403, "permission_denied")
            assert scope in error["message"]
    assert _package(api) == package
    assert _gate(api) == gate
    assert api.get(f"{PACKAGES}/another").status_code == 404
    # The scope alone is enough.
    assert api.get(f"{PACKAGES}/{KEY}/gate", token=only["gate:read"]).status_code == 200
    release = api.post(
        f"{PACKAGES}/{KEY}/release",
        token=only["releases:write"],
        json={"digest": gate["digest"]},
    )
    assert release.status_code == 200


def test_a_session_cookie_never_authenticates(api: Api, app: Flask, clock: FixedClock) -> None:
    _submitted(api)
    package = _package(api)
    read_only = create_token(clock, "read-only", [tokens.SCOPE_GATE_READ])
    with api.client.session_transaction() as session:
        session.update(
            {"_user_id": "1", "user_id": 1, "_fresh": True, "email": RELEASE_MANAGER, "csrf": "x"}
        )
    for method, path, _ in _every_operation(app):
        response = api.call(method, path, anonymous=True, json={"title": "x"})
        assert_envelope(response, 401, "unauthenticated")
    # The cookie adds nothing to a token either.
    response = api.patch(f"{PACKAGES}/{KEY}", token=read_only, json={"title": "x"})
    assert_envelope(response, 403, "permission_denied")
    assert _package(api) == package


def _last_used(name: str) -> Any:
    db.session.remove()
    return db.session.scalar(sa.select(ApiToken.last_used_at).where(ApiToken.name == name))


def test_last_used_at_is_recorded_and_throttled(api: Api, clock: FixedClock) -> None:
    secret = create_token(clock, "poller", [tokens.SCOPE_GATE_READ])
    assert _last_used("poller") is None
    clock.advance(timedelta(seconds=5))
    first_use = clock.now()
    url = f"{API_PREFIX}/checklists"

    with recorded_statements() as statements:
        assert api.get(url, token=secret).status_code == 200
        clock.advance(timedelta(seconds=tokens.LAST_USED_RESOLUTION_SECONDS - 1))
        assert api.get(url, token=secret).status_code == 200
    writes = [s for s in statements if s.lstrip().upper().startswith("UPDATE")]
    assert len(writes) == 1, writes
    assert _last_used("poller") == first_use

    clock.advance(timedelta(seconds=1))
    assert api.get(url, token=secret).status_code == 200
    assert _last_used("poller") == first_use + timedelta(
        seconds=tokens.LAST_USED_RESOLUTION_SECONDS
    )
    # Failed authentication records nothing.
    revoke_token(clock, "poller")
    clock.advance(timedelta(hours=1))
    assert api.get(url, token=secret).status_code == 401
    assert _last_used("poller") == first_use + timedelta(
        seconds=tokens.LAST_USED_RESOLUTION_SECONDS
    )
    assert _last_used("ci-all") is None


# --- the OpenAPI document ---------------------------------------------------------------------


def _document(api: Api) -> dict[str, Any]:
    response = api.get(f"{API_PREFIX}/openapi.json", anonymous=True)
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    doc: dict[str, Any] = response.json  # type: ignore[assignment]
    return doc


def _operations(doc: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (path, method): operation
        for path, item in doc["paths"].items()
        for method, operation in item.items()
        if method in HTTP_METHODS
    }


def _refs(node: object) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [r for value in node.values() for r in _refs(value)]
    if isinstance(node, list):
        return [r for value in node for r in _refs(value)]
    return []


def test_the_openapi_document_is_openapi_3_1(api: Api) -> None:
    doc = _document(api)
    assert doc == api.doc | {"servers": doc["servers"]}
    assert doc["openapi"] == "3.1.0"
    assert doc["info"]["title"]
    assert doc["info"]["version"]
    assert doc["servers"][0]["url"].endswith(API_PREFIX)
    operations = _operations(doc)
    assert operations
    ids = [op["operationId"] for op in operations.values()]
    assert len(ids) == len(set(ids)), "operationIds must be unique"
    schemes = doc["components"]["securitySchemes"]
    for (path, method), operation in operations.items():
        assert path.startswith("/")
        assert operation["operationId"], (path, method)
        assert operation["responses"], (path, method)
        for status, response in operation["responses"].items():
            assert status.isdigit()
            assert len(status) == 3
            assert resolve(doc, response)["description"]
        for requirement in operation["security"]:
            assert set(requirement) <= set(schemes)
        params = {
            p["name"]
            for p in doc["paths"][path].get("parameters", []) + operation.get("parameters", [])
            if p["in"] == "path"
        }
        templated = {part[1:-1] for part in path.split("/") if part.startswith("{")}
        assert params == templated, path
        if method in ("get", "delete"):
            assert "requestBody" not in operation
    for ref in _refs(doc):
        resolve(doc, {"$ref": ref})
    for schema in doc["components"]["schemas"].values():
        root = {**schema, "components": doc["components"]}
        jsonschema.Draft202012Validator.check_schema(root)


def test_the_document_and_the_url_map_describe_the_same_api(api: Api, app: Flask) -> None:
    doc = _document(api)
    served = {
        (openapi_path(rule), method) for rule in api_rules(app) for method in rule_methods(rule)
    }
    documented = set(_operations(doc))
    assert served == documented
    assert any(r.endpoint == OPENAPI_ENDPOINT for r in app.url_map.iter_rules())


def test_each_operation_declares_the_scope_its_view_requires(api: Api, app: Flask) -> None:
    doc = _document(api)
    for rule in api_rules(app):
        required = app.view_functions[rule.endpoint].required_scope
        for method in rule_methods(rule):
            operation = doc["paths"][openapi_path(rule)][method]
            assert operation["x-required-scope"] == required, (rule.rule, method)
            assert operation["security"] == [{"bearer": [required]}]


def test_flow_responses_validate_against_the_document(api: Api, clock: FixedClock) -> None:
    doc = api.doc
    created = api.post(PACKAGES, json=NEW_PACKAGE)
    schema_validate(doc, "Package", created.json)
    submitted = api.post(f"{PACKAGES}/{KEY}/submit")
    schema_validate(doc, "Package", submitted.json)
    pending = _gate(api)
    schema_validate(doc, "Gate", pending)
    sign(clock, KEY)
    gate = _gate(api)
    schema_validate(doc, "Gate", gate)
    released = api.post(f"{PACKAGES}/{KEY}/release", json={"digest": gate["digest"]})
    schema_validate(doc, "ReleaseResult", released.json)
    conflict = api.post(f"{PACKAGES}/{KEY}/release", json={"digest": gate["digest"]})
    schema_validate(doc, "Error", conflict.json)
    with pytest.raises(jsonschema.ValidationError):
        schema_validate(doc, "Gate", {**gate, "status": "maybe"})
    # The body the flow sent (and the server accepted) is one the document accepts too.
    schema_validate(doc, "PackageCreate", NEW_PACKAGE)
    statuses = {(op, status) for op, status, _ in api.checked}
    assert ("releasePackage", "409") in statuses


# --- checklists -------------------------------------------------------------------------------


def test_checklist_catalogue(app: Flask, clock: FixedClock) -> None:
    api = Api(app, create_token(clock, "reader", [tokens.SCOPE_GATE_READ]))
    assert api.get(f"{API_PREFIX}/checklists").json == []
    sync_and_approve(SAMPLES, clock)

    listing = api.get(f"{API_PREFIX}/checklists")
    assert listing.status_code == 200
    body = listing.json
    assert isinstance(body, list)
    assert [c["application"] for c in body] == [
        "identity-platform",
        "payments-api",
        "storefront-web",
    ]
    payments = body[1]
    assert payments["title"] == "Payments API"
    assert payments["approved_version"] == 7
    assert [(v["version"], v["state"]) for v in payments["versions"]] == [(7, "approved")]
    assert len(payments["versions"][0]["sha256"]) == 64

    detail = api.get(f"{API_PREFIX}/checklists/payments-api")
    assert detail.status_code == 200
    assert detail.json is not None
    assert {k: v for k, v in detail.json.items() if k != "checklist"} == payments
    checklist = detail.json["checklist"]
    assert checklist["application"] == "payments-api"
    assert checklist["version"] == 7
    assert [s["id"] for s in checklist["sections"]] == ["build", "security", "operations"]
    assert len(checklist["user_validation"]["key_users"]) == 2

    missing = api.get(f"{API_PREFIX}/checklists/no-such-app")
    assert "no-such-app" in assert_envelope(missing, 404, "not_found")["message"]


def test_a_checklist_pending_review_has_no_approved_version(
    app: Flask, clock: FixedClock, tmp_path: Path
) -> None:
    write_checklists(tmp_path, applications=1, items=1, prefix="fresh")
    api = Api(app, create_token(clock, "reader", [tokens.SCOPE_GATE_READ]))
    with unit_of_work(db.session) as session:
        checklists.sync_checklists(
            session, tmp_path, clock=clock, declared_authors=[CHECKLIST_AUTHOR]
        )
    detail = api.get(f"{API_PREFIX}/checklists/fresh-00")
    assert detail.status_code == 200
    assert detail.json is not None
    assert detail.json["approved_version"] is None
    assert detail.json["checklist"] is None
    assert detail.json["versions"][0]["state"] == "pending_review"


# --- cost of the gate -------------------------------------------------------------------------

# SQL statements per GET /packages/<key>/gate (transaction control such as SQLite's explicit
# BEGIN not counted), the same whatever the package's size.
# After any change: the audit chain's head read by the fast path for polls (api/gate_polls.py),
# which finds nothing cached for it and hands the request to Flask; then, in Flask's own
# transaction, the head again (the caches' version, read with the event at the number this
# host witnessed, services/head_witness.py), the token (its cached copy is
# as old as the head), the package, its applications with their pinned checklists, the
# governance reviews, the untriaged post-release findings, the open learning reviews and
# action items, the sign-offs, (in review) the absences not yet over, which decide who is
# waited on while someone is away, the newest approved freeze calendar, and the emergencies (its
# own, and open post-implementation reviews of its applications). (A released package adds its
# key users' answers instead of the absences.)
GATE_QUERY_BUDGET = 12
# Nothing changed since the last poll: the audit chain's head; token and gate come from caches
# (and the fast path answers without Flask).
CACHED_GATE_QUERY_BUDGET = 1


def _gate_statements(api: Api, key: str) -> list[str]:
    with recorded_statements() as statements:
        gate = _gate(api, key)
    assert gate["status"] == "pending"
    return [s for s in statements if s.strip().upper() not in ("BEGIN", "COMMIT", "ROLLBACK")]


def test_the_gate_costs_the_same_queries_whatever_the_package_size(
    app: Flask, clock: FixedClock, tmp_path: Path
) -> None:
    write_checklists(tmp_path / "small", applications=2, items=5, prefix="small")
    write_checklists(tmp_path / "large", applications=20, items=40, prefix="large")
    sync_and_approve(tmp_path / "small", clock)
    sync_and_approve(tmp_path / "large", clock)
    create_package(clock, "small", {f"small-{i:02d}": "1.0" for i in range(2)})
    create_package(clock, "large", {f"large-{i:02d}": "1.0" for i in range(20)})
    for key, applications in (("small", 2), ("large", 20)):
        for i in range(applications):
            sign(clock, key, application=f"{key}-{i:02d}", limit=3)
    api = Api(app, create_token(clock, "ci", [tokens.SCOPE_GATE_READ]))
    api.get(f"{API_PREFIX}/checklists")  # the first use of the token records last_used_at

    for key in ("small", "large"):
        sign(clock, key, application=f"{key}-01", limit=1)  # a change: the next poll is cold
        assert len(cold := _gate_statements(api, key)) == GATE_QUERY_BUDGET, cold
        assert len(warm := _gate_statements(api, key)) == CACHED_GATE_QUERY_BUDGET, warm
    large_gate = _gate(api, "large")
    assert large_gate["progress"]["required"] == 20 * (40 + 1)
    assert large_gate["progress"]["signed"] == 20 * 3 + 1
    assert len(large_gate["applications"]) == 20


def test_package_rows_are_not_touched_by_reads(api: Api, clock: FixedClock) -> None:
    _submitted(api)
    with recorded_statements() as statements:
        _gate(api)
        _package(api)
        api.get(f"{API_PREFIX}/checklists")
    writes = [s for s in statements if s.lstrip().upper().startswith(("UPDATE", "INSERT"))]
    assert writes == []
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Package)) == 1
