"""The release population auditors sample from, over the API and the CLI: what it lists, how it
proves it is complete, its CSV, its scope, and the deployments no gate covered."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskCliRunner

from gatekeeper.cli import cli
from gatekeeper.db.base import db
from gatekeeper.db.models import AuditEvent, ChecklistVersion, Package, Signoff
from gatekeeper.db.unit_of_work import read_snapshot, unit_of_work
from gatekeeper.domain import signoff
from gatekeeper.domain.clock import FixedClock
from gatekeeper.services import audit, population, tokens
from tests.conftest import SAMPLES
from tests.functional.api_helpers import (
    API_PREFIX,
    EVIDENCE,
    RELEASE_MANAGER,
    Api,
    assert_envelope,
    create_package,
    create_token,
    recorded_statements,
    sign,
    sync_and_approve,
)

KEY = "2026.11-r3"
PACKAGES = f"{API_PREFIX}/packages"
POPULATION = f"{API_PREFIX}/audit/population"
NOVEMBER = {"from": "2026-11-01", "to": "2026-11-30"}
APPLICATIONS = {"payments-api": "7.4.0", "storefront-web": "2026.11.2"}
PIPELINE = "https://ci.example.com/pipelines/77"
TOKEN_NAME = "ci-all"
DEPLOYMENT: dict[str, Any] = {
    "environment": "production",
    "applications": [{"application": "payments-api", "version": "7.4.0"}],
    "pipeline_url": PIPELINE,
}


@pytest.fixture
def api(app: Flask, clock: FixedClock) -> Api:
    sync_and_approve(SAMPLES, clock)
    return Api(app, create_token(clock, TOKEN_NAME))


def _gate(api: Api, key: str) -> dict[str, Any]:
    response = api.get(f"{PACKAGES}/{key}/gate")
    assert response.status_code == 200, response.json
    body: dict[str, Any] = response.json  # type: ignore[assignment]
    return body


def _open(api: Api, clock: FixedClock, key: str, applications: dict[str, str]) -> str:
    """Submit `key`, have every signer sign; returns the open gate's digest."""
    create_package(clock, key, applications)
    sign(clock, key)
    gate = _gate(api, key)
    assert gate["status"] == "open", gate["blockers"]
    digest: str = gate["digest"]
    return digest


def _release(
    api: Api,
    clock: FixedClock,
    key: str,
    applications: dict[str, str] | None = None,
    notes: str = "",
) -> str:
    digest = _open(api, clock, key, applications or APPLICATIONS)
    response = api.post(f"{PACKAGES}/{key}/release", json={"digest": digest, "notes": notes})
    assert response.status_code == 200, response.json
    return digest


def _population(api: Api, token: str | None = None, **params: str) -> dict[str, Any]:
    query = "&".join(f"{k}={v}" for k, v in {**NOVEMBER, **params}.items())
    response = api.get(f"{POPULATION}?{query}", token=token)
    assert response.status_code == 200, response.get_data(as_text=True)
    body: dict[str, Any] = response.json  # type: ignore[assignment]
    return body


def _canonical_sha256(document: dict[str, Any]) -> str:
    content = {k: v for k, v in document.items() if k != "header"}
    encoded = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(encoded.encode()).hexdigest()


def _codes(document: dict[str, Any]) -> list[tuple[str, str | None]]:
    return sorted((e["code"], e["package"]) for e in document["exceptions"])


def _deploy(api: Api, key: str, applications: list[dict[str, str]], **extra: Any) -> Any:
    body = {"environment": "production", "applications": applications, "pipeline_url": PIPELINE}
    return api.post(f"{PACKAGES}/{key}/deployments", json={**body, **extra})


# --- what the population lists ------------------------------------------------------------------


def test_a_release_is_listed_with_applications_approvals_roles_and_checks(
    api: Api, clock: FixedClock
) -> None:
    digest = _release(api, clock, KEY, notes="deployed by pipeline 77")
    create_package(clock, "2026.11-pending", {"payments-api": "7.5.0"})
    clock.set(datetime(2026, 12, 5, 12, tzinfo=UTC))
    _release(api, clock, "2026.12-r1", {"storefront-web": "2026.12.1"})

    document = _population(api)

    assert document["exceptions"] == []
    (entry,) = document["population"]
    assert entry["package"] == KEY
    assert entry["sources"] == {"audit_log": True, "packages_table": True}
    assert entry["mode"] == "normal"
    assert (entry["state"], entry["revision"], entry["released_by"]) == ("released", 1, TOKEN_NAME)
    assert entry["release_digest"] == digest
    assert entry["gate_at_release"]["digest"] == digest
    event = db.session.scalars(
        sa.select(AuditEvent).where(
            AuditEvent.action == "package.released", AuditEvent.package == KEY
        )
    ).one()
    assert entry["release_event"]["seq"] == event.seq
    assert entry["release_event"]["hash"] == event.hash
    assert entry["release_event"]["verified"] is True
    stored = {v.application.slug: v for v in db.session.scalars(sa.select(ChecklistVersion)).all()}
    assert [
        (a["application"], a["version"], a["checklist_version"], a["checklist_sha256"])
        for a in entry["applications"]
    ] == [
        (slug, version, stored[slug].version, stored[slug].sha256)
        for slug, version in sorted(APPLICATIONS.items())
    ]

    approvals = entry["approvals"]
    by_role: dict[str, list[dict[str, Any]]] = {}
    for approval in approvals:
        by_role.setdefault(approval["role"], []).append(approval)
    assert list(by_role) == ["governance_reviewer", "engineer", "key_user", "release_manager"]
    reviewed = by_role["governance_reviewer"]
    reviewers = {(a["application"], a["person"], a["decision"]) for a in reviewed}
    assert reviewers == {
        ("payments-api", "release-board@example.com", "approved"),
        ("storefront-web", "release-board@example.com", "approved"),
    }
    assert all(a["digest"] == f"sha256:{a['checklist_sha256']}" for a in reviewed)
    signoffs = db.session.scalars(sa.select(Signoff).order_by(Signoff.id)).all()
    listed = {
        (a["application"], a["requirement"], a["person"], a["decision"], a["revision"])
        for a in by_role["engineer"] + by_role["key_user"]
    }
    assert listed == {
        (
            s.package_application.application.slug,
            f"{s.section_id}.{s.item_id}" if s.kind == "item" else "key-user validation",
            s.signer,
            s.decision,
            s.revision,
        )
        for s in signoffs
        if s.package_id == _package_id(KEY)
    }
    assert all(a["counted"] for a in approvals)
    assert {a["application_version"] for a in by_role["engineer"]} == set(APPLICATIONS.values())
    (manager,) = by_role["release_manager"]
    assert (manager["person"], manager["digest"], manager["revision"]) == (TOKEN_NAME, digest, 1)
    assert manager["comment"] == "deployed by pipeline 77"

    checks = {c["rule"]: c for c in entry["separation_of_duties"]}
    assert set(checks) == {
        "assembler_excluded",
        "key_users_not_technical_signers",
        "one_count_per_person_per_item",
        "only_listed_signers",
    }
    assert all(c["passed"] and c["violations"] == [] for c in checks.values())
    assert RELEASE_MANAGER in checks["assembler_excluded"]["detail"]

    header = document["header"]
    assert header["format"] == "gatekeeper-population/1"
    assert header["query"] == {**NOVEMBER, "format": "json"}
    assert header["period"]["interval"] == "[2026-11-01T00:00:00+00:00, 2026-12-01T00:00:00+00:00)"
    assert header["counts"] == {
        "packages": 1,
        "applications": 2,
        "approvals": len(approvals),
        "deployments": 0,
        "deployments_not_covered": 0,
        "exceptions": 0,
    }
    seq, head = audit.latest(db.session)
    db.session.rollback()
    assert header["audit_head"] == {"seq": seq, "hash": head}
    assert header["audit_chain"]["walked"] == {"from_seq": 1, "to_seq": seq}
    assert header["audit_chain"]["intact"] is True
    assert header["content_sha256"] == _canonical_sha256(document)

    december = _population(api, **{"from": "2026-12-01", "to": "2026-12-31"})
    assert [e["package"] for e in december["population"]] == ["2026.12-r1"]


def _package_id(key: str) -> int:
    found: int = db.session.scalar(sa.select(Package.id).where(Package.key == key))
    return found


def test_the_period_is_whole_utc_days_from_the_first_through_the_last(
    api: Api, clock: FixedClock
) -> None:
    clock.set(datetime(2026, 11, 30, 23, 59, 59, 999999, tzinfo=UTC))
    _release(api, clock, "last-moment", {"payments-api": "1"})
    clock.set(datetime(2026, 12, 1, tzinfo=UTC))
    _release(api, clock, "first-moment", {"payments-api": "2"})

    def keys(first: str, last: str) -> list[str]:
        document = _population(api, **{"from": first, "to": last})
        return [e["package"] for e in document["population"]]

    assert keys("2026-11-30", "2026-11-30") == ["last-moment"]
    assert keys("2026-12-01", "2026-12-01") == ["first-moment"]
    assert keys("2026-11-01", "2026-12-01") == ["first-moment", "last-moment"]
    assert keys("2026-11-01", "2026-11-29") == []


def test_the_assembler_and_key_users_who_sign_technical_items_are_reported_as_kept_out(
    app: Flask, clock: FixedClock, tmp_path: Path
) -> None:
    """The assembler is one of two build engineers (the other signs); a storefront key user is
    also a web engineer (the others validate): both are named as kept out, and nothing of
    theirs counted."""
    directory = tmp_path / "checklists"
    directory.mkdir()
    for name in ("payments-api", "storefront-web"):
        text = (SAMPLES / f"{name}.yaml").read_text(encoding="utf-8")
        if name == "storefront-web":
            text = text.replace(
                "  key_users:\n",
                "  key_users:\n    - email: chloe@example.com\n      name: Chloe\n",
                1,
            )
        (directory / f"{name}.yaml").write_text(text, encoding="utf-8")
    sync_and_approve(directory, clock)
    api = Api(app, create_token(clock, TOKEN_NAME, owner="ana@example.com"))
    assembled = api.post(
        PACKAGES,
        json={
            "key": KEY,
            "title": "November",
            "environment": "production",
            "applications": [
                {"application": a, "version": v} for a, v in sorted(APPLICATIONS.items())
            ],
        },
    )
    assert assembled.status_code == 201, assembled.json
    assert api.post(f"{PACKAGES}/{KEY}/submit").status_code == 200
    sign(clock, KEY)
    gate = _gate(api, KEY)
    assert gate["status"] == "open", gate["blockers"]
    assert api.post(f"{PACKAGES}/{KEY}/release", json={"digest": gate["digest"]}).status_code == 200

    (entry,) = _population(api)["population"]
    checks = {c["rule"]: c for c in entry["separation_of_duties"]}
    assert checks["assembler_excluded"]["passed"]
    assert checks["assembler_excluded"]["excluded"] == ["payments-api: build.artifacts-from-ci"]
    assert checks["key_users_not_technical_signers"]["passed"]
    assert checks["key_users_not_technical_signers"]["excluded"] == [
        "storefront-web: chloe@example.com"
    ]
    people = {(a["role"], a["person"]) for a in entry["approvals"]}
    assert ("engineer", "ana@example.com") not in people
    assert ("key_user", "chloe@example.com") not in people
    assert ("engineer", "chloe@example.com") in people


def test_the_population_costs_the_same_queries_whatever_its_size(
    api: Api, clock: FixedClock
) -> None:
    def statements() -> list[str]:
        with recorded_statements() as seen, read_snapshot(db.session) as session:
            population.build(session, "2026-11-01", "2026-11-30", now=clock.now())
        return seen

    _release(api, clock, "first", {"payments-api": "1"})
    _deploy(api, "first", [{"application": "payments-api", "version": "1"}])
    small = statements()
    for index in range(4):
        _release(api, clock, f"more-{index}", APPLICATIONS)
        _deploy(api, f"more-{index}", DEPLOYMENT["applications"])
    _forge_release_event(clock, "no-such-package")
    large = statements()
    assert len(large) == len(small), "\n".join(large)


# --- completeness: the audit log and the packages table must agree ----------------------------


def _forge_release_event(clock: FixedClock, key: str, digest: str = "sha256:" + "0" * 64) -> None:
    """A `package.released` event appended through the audit service: chain-valid, but the
    package it names was never released."""
    with unit_of_work(db.session) as session:
        audit.record(
            session,
            action="package.released",
            actor="mallory",
            subject=f"package {key}",
            now=clock.now(),
            package=key,
            revision=1,
            details={"digest": digest, "notes": ""},
        )


def _mark_released(key: str, clock: FixedClock) -> None:
    """The packages table says released, but no release happened (no event)."""
    with unit_of_work(db.session) as session:
        session.execute(
            sa.update(Package)
            .where(Package.key == key)
            .values(state="released", released_at=clock.now(), released_by="mallory")
        )


def test_an_event_without_its_package_and_a_package_without_its_event_are_exceptions(
    api: Api, clock: FixedClock
) -> None:
    _release(api, clock, KEY)
    create_package(clock, "in-review", {"payments-api": "7.5.0"})
    create_package(clock, "never-released", {"payments-api": "7.6.0"})
    _forge_release_event(clock, "no-such-package")
    _forge_release_event(clock, "in-review")
    _mark_released("never-released", clock)

    document = _population(api)

    assert _codes(document) == [
        ("RELEASED_PACKAGE_MISSING", "in-review"),
        ("RELEASED_PACKAGE_MISSING", "no-such-package"),
        ("RELEASE_EVENT_MISSING", "never-released"),
    ]
    entries = {e["package"]: e for e in document["population"]}
    assert set(entries) == {KEY, "in-review", "no-such-package", "never-released"}
    assert entries["no-such-package"]["sources"] == {"audit_log": True, "packages_table": False}
    assert entries["no-such-package"]["approvals"][0]["person"] == "mallory"
    assert entries["in-review"]["sources"] == {"audit_log": True, "packages_table": True}
    assert entries["in-review"]["state"] == "in_review"
    assert entries["never-released"]["sources"] == {"audit_log": False, "packages_table": True}
    assert entries["never-released"]["release_event"] is None
    assert document["header"]["counts"]["exceptions"] == 3
    assert document["header"]["audit_chain"]["intact"] is True


def test_release_records_that_disagree_and_a_duplicate_event_are_exceptions(
    api: Api, clock: FixedClock
) -> None:
    digest = _release(api, clock, KEY)
    _release(api, clock, "second", {"payments-api": "7.4.1"})
    _forge_release_event(clock, KEY, digest)
    with unit_of_work(db.session) as session:
        session.execute(
            sa.update(Package).where(Package.key == "second").values(release_digest=digest)
        )

    codes = _codes(_population(api))

    assert codes == [("DUPLICATE_RELEASE_EVENT", KEY), ("RELEASE_RECORDS_DISAGREE", "second")]


def test_a_release_whose_event_lies_outside_the_period_disagrees_instead_of_missing(
    api: Api, clock: FixedClock
) -> None:
    _release(api, clock, KEY)
    with unit_of_work(db.session) as session:
        session.execute(
            sa.update(Package)
            .where(Package.key == KEY)
            .values(released_at=datetime(2026, 10, 31, 23, tzinfo=UTC))
        )

    november = _population(api)
    october = _population(api, **{"from": "2026-10-01", "to": "2026-10-31"})

    assert _codes(november) == [("RELEASE_RECORDS_DISAGREE", KEY)]
    assert _codes(october) == [("RELEASE_RECORDS_DISAGREE", KEY)]
    (problem,) = october["exceptions"]
    assert "released_at" in problem["message"]


def test_a_release_event_forged_into_the_table_breaks_the_chain_and_is_unverified(
    api: Api, clock: FixedClock
) -> None:
    _release(api, clock, KEY)
    seq, head = audit.latest(db.session)
    db.session.rollback()
    # Appending needs no special access: the database refuses only UPDATE and DELETE.
    with db.engine.begin() as connection:
        connection.execute(
            sa.insert(AuditEvent).values(
                seq=seq + 1,
                occurred_at=clock.now(),
                actor="mallory",
                action="package.released",
                subject="package forged",
                package="forged",
                revision=1,
                details="not JSON",
                prev_hash=head,
                hash="f" * 64,
            )
        )

    document = _population(api)

    assert _codes(document) == [
        ("AUDIT_CHAIN_BROKEN", None),
        ("RELEASED_PACKAGE_MISSING", "forged"),
    ]
    chain = document["header"]["audit_chain"]
    assert (chain["intact"], chain["first_bad_seq"]) == (False, seq + 1)
    assert chain["walked"] == {"from_seq": 1, "to_seq": seq + 1}
    entries = {e["package"]: e for e in document["population"]}
    assert entries["forged"]["release_event"]["verified"] is False
    assert entries["forged"]["release_event"]["digest"] is None
    assert entries[KEY]["release_event"]["verified"] is True


# --- the CSV ----------------------------------------------------------------------------------


def _split_csv(text: str) -> tuple[dict[str, str], str, list[dict[str, str]]]:
    """(header fields, the table's exact text, the table's rows)."""
    head, table = text.split("\r\n\r\n", 1)
    fields = {row[0].removeprefix("# "): row[1] for row in csv.reader(io.StringIO(head))}
    return fields, table, list(csv.DictReader(io.StringIO(table)))


def test_the_csv_has_a_row_per_approval_and_exception_and_quotes_formulas(
    api: Api, clock: FixedClock
) -> None:
    create_package(clock, KEY, APPLICATIONS)
    formula = '=HYPERLINK("https://evil.example","ok")'
    sign(
        clock,
        KEY,
        item="artifacts-from-ci",
        signer="ana@example.com",
        decision=signoff.Decision(signoff.ITEM, signoff.PASS, comment=formula, evidence=EVIDENCE),
    )
    sign(clock, KEY)
    gate = _gate(api, KEY)
    released = api.post(
        f"{PACKAGES}/{KEY}/release", json={"digest": gate["digest"], "notes": "@SUM(A1)"}
    )
    assert released.status_code == 200
    _forge_release_event(clock, "+forged")

    response = api.get(f"{POPULATION}?from=2026-11-01&to=2026-11-30&format=csv")

    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    assert response.headers["Cache-Control"] == "no-store"
    fields, table, rows = _split_csv(response.get_data(as_text=True))
    columns = table.split("\r\n", 1)[0].split(",")
    assert len(columns) == len(set(columns)), columns
    assert fields["format"] == "gatekeeper-population/1"
    assert (fields["query.from"], fields["query.to"], fields["query.format"]) == (
        "2026-11-01",
        "2026-11-30",
        "csv",
    )
    assert fields["period.interval"] == "[2026-11-01T00:00:00+00:00, 2026-12-01T00:00:00+00:00)"
    assert fields["content_sha256"] == hashlib.sha256(table.encode()).hexdigest()
    json_document = _population(api)
    assert fields["audit_head.hash"] == json_document["header"]["audit_head"]["hash"]
    approvals = [r for r in rows if r["record"] == "approval"]
    assert len(approvals) == json_document["header"]["counts"]["approvals"]
    assert int(fields["counts.approvals"]) == len(approvals)
    assert {r["package"] for r in approvals} == {KEY, "'+forged"}
    (quoted,) = [r for r in approvals if r["person"] == "ana@example.com"]
    assert quoted["comment"] == "'" + formula
    (manager,) = [r for r in approvals if r["role"] == "release_manager" and r["package"] == KEY]
    assert manager["comment"] == "'@SUM(A1)"
    assert manager["separation_of_duties"].count(": pass") == 4
    exceptions = [r for r in rows if r["record"] == "exception"]
    assert [(r["code"], r["package"]) for r in exceptions] == [
        ("RELEASED_PACKAGE_MISSING", "'+forged")
    ]
    for row in rows:
        for value in row.values():
            assert not (value or "").startswith(("=", "+", "-", "@")), row


# --- query parameters and scopes ---------------------------------------------------------------


@pytest.mark.parametrize(
    "query",
    [
        "",
        "from=2026-11-01",
        "to=2026-11-30",
        "from=2026-11-31&to=2026-12-01",
        "from=20261101&to=2026-11-30",
        "from=2026-W45-1&to=2026-11-30",
        "from=2026-12-01&to=2026-11-30",
        "from=2026-11-01&to=9999-12-31",
        "from=2026-11-01&to=2026-11-30&format=xlsx",
        "from=2026-11-01&to=2026-11-30&package=x",
        "from=2026-11-01&from=2026-10-01&to=2026-11-30",
    ],
)
def test_bad_queries_are_422_with_the_envelope(api: Api, query: str) -> None:
    assert_envelope(api.get(f"{POPULATION}?{query}"), 422, "validation_failed")


def test_the_population_needs_the_audit_read_scope(api: Api, clock: FixedClock) -> None:
    url = f"{POPULATION}?from=2026-11-01&to=2026-11-30"
    assert_envelope(api.get(url, anonymous=True), 401, "unauthenticated")
    others = [s for s in tokens.SCOPES if s != tokens.SCOPE_AUDIT_READ]
    lacking = create_token(clock, "everything-else", others)
    error = assert_envelope(api.get(url, token=lacking), 403, "permission_denied")
    assert "audit:read" in error["message"]
    auditor = create_token(clock, "auditor", [tokens.SCOPE_AUDIT_READ], owner=None)
    assert api.get(url, token=auditor).status_code == 200
    # An auditor's token reads; it records nothing.
    refused = _deploy(Api(api.app, auditor), KEY, DEPLOYMENT["applications"])
    assert_envelope(refused, 403, "permission_denied")


# --- deployment records -------------------------------------------------------------------------


def test_a_deployment_of_the_released_versions_is_covered_and_audited(
    api: Api, clock: FixedClock
) -> None:
    _release(api, clock, KEY)
    clock.advance(timedelta(minutes=5))

    response = _deploy(
        api,
        KEY,
        [
            {"application": "payments-api", "version": "7.4.0"},
            {"application": "storefront-web", "version": "2026.11.2", "sha": "3F9C2AB"},
        ],
    )

    assert response.status_code == 201, response.json
    body = response.json
    assert body["covered"] is True
    assert body["uncovered"] == []
    # The gate as evaluated now: its digest covers the released state, not the one released at.
    assert body["gate"]["digest"] == _gate(api, KEY)["digest"]
    assert (body["gate"]["status"], body["gate"]["package_state"]) == ("open", "released")
    assert body["gate"]["revision"] == 1
    assert body["applications"][1] == {
        "application": "storefront-web",
        "version": "2026.11.2",
        "sha": "3f9c2ab",
        "package_version": "2026.11.2",
    }
    assert (body["reported_by"], body["pipeline_url"]) == (TOKEN_NAME, PIPELINE)
    event = db.session.scalars(
        sa.select(AuditEvent).where(AuditEvent.action == "deployment.recorded")
    ).one()
    assert (event.actor, event.package) == (TOKEN_NAME, KEY)
    assert json.loads(event.details)["deployment"] == body["id"]
    document = _population(api)
    assert document["exceptions"] == []
    assert [d["id"] for d in document["deployments"]] == [body["id"]]
    assert document["header"]["counts"]["deployments"] == 1


def test_a_deployment_while_the_gate_is_open_before_the_release_is_covered(
    api: Api, clock: FixedClock
) -> None:
    _open(api, clock, KEY, APPLICATIONS)
    response = _deploy(api, KEY, [{"application": "payments-api", "version": "7.4.0"}])
    assert response.status_code == 201
    assert response.json["covered"] is True
    assert response.json["gate"]["package_state"] == "in_review"


def test_deployments_no_gate_covered_are_exceptions_in_the_population(
    api: Api, clock: FixedClock
) -> None:
    create_package(clock, "pending", {"payments-api": "7.4.0"})
    create_package(clock, "draft", {"payments-api": "7.4.0"}, submit=False)
    _release(api, clock, KEY)
    clock.advance(timedelta(hours=1))

    early = _deploy(api, "pending", [{"application": "payments-api", "version": "7.4.0"}])
    drafted = _deploy(api, "draft", [{"application": "payments-api", "version": "7.4.0"}])
    other = _deploy(api, KEY, [{"application": "payments-api", "version": "7.4.9"}])
    missing = _deploy(api, KEY, [{"application": "identity-platform", "sha": "a" * 40}])

    assert [r.status_code for r in (early, drafted, other, missing)] == [201] * 4
    assert [u["code"] for u in early.json["uncovered"]] == ["DEPLOYMENT_GATE_NOT_OPEN"]
    assert early.json["gate"]["status"] == "pending"
    assert [u["code"] for u in drafted.json["uncovered"]] == ["DEPLOYMENT_GATE_NOT_OPEN"]
    assert [u["code"] for u in other.json["uncovered"]] == ["DEPLOYMENT_VERSION_NOT_APPROVED"]
    assert "holds payments-api 7.4.0" in other.json["uncovered"][0]["message"]
    assert [u["code"] for u in missing.json["uncovered"]] == ["DEPLOYMENT_VERSION_NOT_APPROVED"]
    assert "does not contain identity-platform" in missing.json["uncovered"][0]["message"]

    document = _population(api)
    assert _codes(document) == [
        ("DEPLOYMENT_GATE_NOT_OPEN", "draft"),
        ("DEPLOYMENT_GATE_NOT_OPEN", "pending"),
        ("DEPLOYMENT_VERSION_NOT_APPROVED", KEY),
        ("DEPLOYMENT_VERSION_NOT_APPROVED", KEY),
    ]
    assert document["header"]["counts"]["deployments_not_covered"] == 4
    assert {e["details"]["deployment"] for e in document["exceptions"]} == {
        r.json["id"] for r in (early, drafted, other, missing)
    }
    # Judged as things stood when reported: releasing the pending package later changes nothing.
    sign(clock, "pending")
    assert (
        api.post(
            f"{PACKAGES}/pending/release", json={"digest": _gate(api, "pending")["digest"]}
        ).status_code
        == 200
    )
    assert ("DEPLOYMENT_GATE_NOT_OPEN", "pending") in _codes(_population(api))
    # Deployments outside the period are not listed.
    december = _population(api, **{"from": "2026-12-01", "to": "2026-12-31"})
    assert december["deployments"] == []


def test_a_sha_matches_a_package_version_that_is_that_commit(api: Api, clock: FixedClock) -> None:
    sha = "3f9c2ab7e1d04c5b9a8f6e2d1c0b9a8f7e6d5c4b"
    _release(api, clock, KEY, {"payments-api": sha})
    for deployed, covered in ((sha[:7], True), (sha.upper(), True), (sha[:6] + "0", False)):
        response = _deploy(api, KEY, [{"application": "payments-api", "sha": deployed}])
        assert response.status_code == 201, response.json
        assert response.json["covered"] is covered, deployed


def _without(name: str) -> dict[str, Any]:
    return {k: v for k, v in DEPLOYMENT.items() if k != name}


BAD_DEPLOYMENTS = [
    _without("environment"),
    _without("pipeline_url"),
    _without("applications"),
    {**DEPLOYMENT, "applications": []},
    {**DEPLOYMENT, "environment": ""},
    {**DEPLOYMENT, "environment": "   "},
    {**DEPLOYMENT, "applications": [{"application": "payments-api"}]},
    {**DEPLOYMENT, "applications": [{"application": "payments-api", "version": "1", "x": 1}]},
    {**DEPLOYMENT, "applications": [{"application": "payments-api", "sha": "xyz"}]},
    {**DEPLOYMENT, "applications": [{"application": "Payments API", "version": "1"}]},
    {**DEPLOYMENT, "applications": [{"application": "payments-api", "version": "  "}]},
    {**DEPLOYMENT, "applications": [{"application": "payments-api", "version": "1"}] * 2},
    {**DEPLOYMENT, "pipeline_url": "ftp://ci.example.com/1"},
    {**DEPLOYMENT, "pipeline_url": "https://"},
    {**DEPLOYMENT, "gate_status": "open"},
    {**DEPLOYMENT, "reported_at": "2026-11-01T00:00:00+00:00"},
]


@pytest.mark.parametrize("body", BAD_DEPLOYMENTS)
def test_bad_deployment_bodies_are_422_and_record_nothing(
    api: Api, clock: FixedClock, body: dict[str, Any]
) -> None:
    _release(api, clock, KEY)
    response = api.post(f"{PACKAGES}/{KEY}/deployments", json=body)
    assert_envelope(response, 422, "validation_failed")
    assert _population(api)["deployments"] == []
    assert _deploy(api, KEY, DEPLOYMENT["applications"]).status_code == 201


def test_a_deployment_of_an_unknown_package_is_404(api: Api) -> None:
    response = _deploy(api, "no-such-package", [{"application": "payments-api", "version": "1"}])
    assert_envelope(response, 404, "not_found")


# --- the command line ----------------------------------------------------------------------------


def test_cli_population_matches_the_api_and_writes_csv(
    api: Api, clock: FixedClock, runner: FlaskCliRunner, tmp_path: Path
) -> None:
    _release(api, clock, KEY)
    _forge_release_event(clock, "no-such-package")

    command = ["audit", "population", "--from", "2026-11-01", "--to", "2026-11-30"]
    printed = runner.invoke(cli, command)

    assert printed.exit_code == 0, printed.output
    assert json.loads(printed.stdout) == _population(api)
    assert "2 released package(s), 1 exception(s)" in printed.stderr
    target = tmp_path / "population.csv"
    written = runner.invoke(cli, [*command, "--format", "csv", "-o", str(target)])
    assert written.exit_code == 0, written.output
    text = target.read_bytes().decode("utf-8")
    fields, table, rows = _split_csv(text)
    assert fields["content_sha256"] == hashlib.sha256(table.encode()).hexdigest()
    assert fields["query.format"] == "csv"
    assert {r["record"] for r in rows} == {"approval", "exception"}


def test_cli_population_refuses_bad_dates_in_one_line(runner: FlaskCliRunner) -> None:
    command = ["audit", "population", "--from", "2026-11-30", "--to", "2026-11-01"]
    result = runner.invoke(cli, command)
    assert result.exit_code == 1
    assert result.stderr.strip() == "error: to (2026-11-01) is before from (2026-11-30)"
    assert result.stdout == ""
