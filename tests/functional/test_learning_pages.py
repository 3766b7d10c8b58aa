"""Learning review pages: open one from the package page, write it up, give teams fixes to own,
the list, the governance dashboard's overdue ones, and another manager's review not found."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from flask import Flask

from gatekeeper.domain.clock import FixedClock
from tests.functional.web_helpers import (
    MANAGER,
    OTHER_MANAGER,
    REVIEWER,
    add_staff,
    post,
    sign_in,
)
from tests.support.governance import approve, checklist_dir, release, sign_everything, submit, sync

RELEASED = "2026.10-learn"
TYPED = "Refunds <script>alert(1)</script> stayed queued"


@pytest.fixture
def released(app: Flask, clock: FixedClock, tmp_path: Path) -> None:
    add_staff(clock)
    directory = checklist_dir(tmp_path)
    sync(app, clock, directory)
    approve(clock, "payments-api", 7)
    submit(clock, RELEASED, {"payments-api": "7.3.2"})
    sign_everything(clock, RELEASED)
    release(app, clock, RELEASED)


def test_a_review_is_opened_written_and_completed_in_the_browser(
    app: Flask, clock: FixedClock, released: None
) -> None:
    manager = sign_in(app, MANAGER)
    package_page = manager.get(f"/packages/{RELEASED}")
    assert 'data-testid="open-learning-review"' in package_page.text
    assert f"/learning-reviews?package={RELEASED}" in package_page.text
    opened = post(
        manager,
        "/learning-reviews/open",
        {"package": RELEASED, "application": "payments-api", "reason": TYPED},
    )
    assert opened.status_code == 302
    path = opened.headers["Location"]
    assert path == "/learning-reviews/1"
    page = manager.get(path)
    assert page.status_code == 200
    assert "<script>alert(1)</script>" not in page.text
    assert "&lt;script&gt;" in page.text
    assert "What in the checklist, the tools or the process made this failure easy" in page.text
    assert "Released" in page.text, "the timeline comes from the audit chain"
    assert "who" not in " ".join(
        p.lower() for p in page.text.split('data-testid="prompts"')[1].split("</ul>")[0].split()
    )

    saved = post(
        manager, f"{path}/statement", {"statement": TYPED, "factors": "", "intent": "save"}
    )
    assert saved.status_code == 302
    entry = post(
        manager, f"{path}/entries", {"occurred_at": "2026-11-02T08:15", "text": "Desk noticed"}
    )
    assert entry.status_code == 302
    assert "Desk noticed (added by release-manager@example.com)" in manager.get(path).text

    bad_change = post(
        manager,
        f"{path}/items",
        {
            "title": "Add a scenario",
            "owner": "payments-team@example.com",
            "due_on": "2026-12-01",
            "kind": "checklist_change",
            "findings": "",
        },
    )
    assert bad_change.status_code == 422
    assert "names the findings" in bad_change.text
    foreign = post(
        manager,
        f"{path}/items",
        {
            "title": "Add a scenario",
            "owner": "payments-team@example.com",
            "due_on": "2026-12-01",
            "kind": "checklist_change",
            "findings": "F-99",
        },
    )
    assert foreign.status_code == 422
    item = post(
        manager,
        f"{path}/items",
        {
            "title": "Alert on queued refunds",
            "owner": "Payments-Team@example.com",
            "due_on": "2026-12-01",
            "kind": "tooling",
            "findings": "",
        },
    )
    assert item.status_code == 302
    refused = post(manager, f"{path}/items/1/close", {"action": "drop", "rationale": " "})
    assert refused.status_code == 422
    assert "rationale" in refused.text
    dropped = post(
        manager, f"{path}/items/1/close", {"action": "drop", "rationale": "The monitor covers it"}
    )
    assert dropped.status_code == 302
    again = post(manager, f"{path}/items/1/close", {"action": "finish"})
    assert again.status_code == 409
    assert post(manager, f"{path}/items/99/close", {"action": "finish"}).status_code == 404

    incomplete = post(manager, f"{path}/statement", {"statement": TYPED, "intent": "complete"})
    assert incomplete.status_code == 422
    completed = post(
        manager,
        f"{path}/statement",
        {"statement": TYPED, "factors": "Only small refunds were tried", "intent": "complete"},
    )
    assert completed.status_code == 302
    page = manager.get(path).text
    assert 'data-state="completed"' in page
    assert 'data-testid="statement-form"' not in page
    assert "The monitor covers it" in page
    listed = manager.get(f"/learning-reviews?package={RELEASED}").text
    assert 'data-ref="LR-1"' in listed
    assert 'data-testid="no-learning-reviews"' in manager.get("/learning-reviews?package=x").text


def test_overdue_reviews_and_items_are_on_the_governance_dashboard(
    app: Flask, clock: FixedClock, released: None
) -> None:
    manager = sign_in(app, MANAGER)
    post(
        manager,
        "/learning-reviews/open",
        {"package": RELEASED, "application": "payments-api", "reason": "Refunds stalled"},
    )
    due_on = (clock.now() + timedelta(days=1)).date().isoformat()
    post(
        manager,
        "/learning-reviews/1/items",
        {
            "title": "Alert on queued refunds",
            "owner": "payments-team@example.com",
            "due_on": due_on,
            "kind": "tooling",
            "findings": "",
        },
    )
    reviewer = sign_in(app, REVIEWER)
    assert 'data-testid="late-learning"' not in reviewer.get("/governance").text
    clock.advance(timedelta(hours=48))
    dashboard = reviewer.get("/governance").text
    assert 'data-testid="late-review" data-ref="LR-1"' in dashboard
    assert 'data-testid="late-action-item"' in dashboard
    assert 'href="/learning-reviews"' in dashboard


def test_another_managers_review_is_not_found(
    app: Flask, clock: FixedClock, released: None
) -> None:
    post(
        sign_in(app, MANAGER),
        "/learning-reviews/open",
        {"package": RELEASED, "application": "payments-api", "reason": "Refunds stalled"},
    )
    other = sign_in(app, OTHER_MANAGER)
    assert other.get("/learning-reviews/1").status_code == 404
    assert "LR-1" not in other.get("/learning-reviews").text
    for action, form in [
        ("statement", {"statement": "mine", "factors": "", "intent": "save"}),
        ("entries", {"occurred_at": "2026-11-02T08:15", "text": "mine"}),
    ]:
        assert post(other, f"/learning-reviews/1/{action}", form).status_code == 404
    opened = post(
        other,
        "/learning-reviews/open",
        {"package": RELEASED, "application": "payments-api", "reason": "mine"},
    )
    assert opened.status_code == 404
    assert "LR-1" in sign_in(app, REVIEWER).get("/learning-reviews").text
