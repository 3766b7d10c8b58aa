"""One database holding every page a signer or a manager opens, in every state it can be in:
packages in review, changed, cancelled, expired, drafted and released; review, report, sign-off
and sign-in links fresh, used, expired, superseded, revoked and forged; a finding; a dead
letter. `seed` returns the path of each page by name, for browser tests to walk."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import sqlalchemy as sa
from flask import Flask

from gatekeeper.db.base import db
from gatekeeper.db.models import ChecklistVersion, ReviewLink
from gatekeeper.db.unit_of_work import unit_of_work
from gatekeeper.domain.clock import FixedClock
from gatekeeper.domain.finding import Report
from gatekeeper.runtime import runtime
from gatekeeper.services import (
    checklists,
    emergencies,
    findings,
    learning_reviews,
    links,
    packages,
    reviews,
    sign_ins,
    signoffs,
)
from gatekeeper.services import users as accounts
from gatekeeper.services.checklists import checklist_of
from gatekeeper.web.auth import sign_in_settings
from tests.functional.web_helpers import path_of
from tests.support import flows
from tests.support.access import add_proposal
from tests.support.governance import (
    BOARD,
    MANAGER,
    UX_LEAD,
    checklist_dir,
    release,
    sign_everything,
    sync,
    tokens,
    write_version,
)
from tests.support.mail import dead_letter

ADMIN = "admin@example.com"
REVIEWER = BOARD
AUTHOR = "dev@example.com"
ENGINEER = "raj@example.com"  # signs several payments-api items: one email, one page
KEY_USER = "settlement-lead@example.com"
IN_REVIEW = "2026.11-pages"
# A key as long as keys get, with a title to match: the headings must wrap at 390 px.
LONG_KEY = "2026.11-refunds-queue-and-vouchers"
DRAFT = "2026.12-draft"
RELEASED = "2026.10-released"
OLD_RELEASE = "2026.08-old"
CANCELLED = "2026.11-cancelled"
HOTFIX = "2026.11-hotfix"
EXPIRED = "2026.11-expired"
APPS = {"payments-api": "7.4.0", "storefront-web": "2026.11.2", "identity-platform": "4.9.1"}
PROBLEM = Report(
    "Refunds over 1,000 EUR stayed queued for hours after the release.",
    "Fourteen customers waited a day for their money.",
    "A scenario refunding a large amount: the release was only tried with small refunds.",
)


@dataclass
class Pages:
    """Paths by name: `staff` need a signed-in manager or admin, `public` need no account."""

    staff: dict[str, str] = field(default_factory=dict)
    public: dict[str, str] = field(default_factory=dict)
    # Sign-off and review pages whose form the browser test sends empty, to see its errors.
    forms: dict[str, str] = field(default_factory=dict)


def _package(clock: FixedClock, key: str, apps: dict[str, str], title: str = "") -> None:
    with unit_of_work(db.session) as session:
        packages.create_package(
            session,
            packages.PackageSpec(
                key,
                title or f"Release {key}",
                "production",
                (clock.now() + timedelta(days=3)).date(),
                tuple(
                    packages.ApplicationSpec(a, v, f"{a} {v}: what changed, what to look at")
                    for a, v in apps.items()
                ),
            ),
            assembler=MANAGER,
            clock=clock,
        )


def _submit(app: Flask, clock: FixedClock, key: str) -> None:
    with unit_of_work(db.session) as session:
        signoffs.submit_for_signoff(
            session, key, actor=MANAGER, clock=clock, links=runtime(app).link_settings()
        )


def _sign_links(about: str) -> dict[str, str]:
    return {who: f"/s/{token}" for who, token in tokens("s", about=about).items()}


def _approve_all(clock: FixedClock) -> None:
    with unit_of_work(db.session) as session:
        for version in session.scalars(sa.select(ChecklistVersion).order_by(ChecklistVersion.id)):
            reviewer = checklist_of(version).governance.reviewers[0]
            checklists.review_version(
                session,
                application=version.application.slug,
                version=version.version,
                action="approve",
                reviewer=reviewer,
                consulted="Dana and Malik, in the weekly ops call",
                clock=clock,
            )


def _staff(clock: FixedClock) -> None:
    with unit_of_work(db.session) as session:
        for email, role in (
            (ADMIN, accounts.ADMIN),
            (MANAGER, accounts.RELEASE_MANAGER),
            (REVIEWER, accounts.GOVERNANCE_REVIEWER),
            ("expired-link@example.com", accounts.RELEASE_MANAGER),
            ("used-link@example.com", accounts.RELEASE_MANAGER),
            ("newer-link@example.com", accounts.RELEASE_MANAGER),
            ("left@example.com", accounts.RELEASE_MANAGER),
        ):
            accounts.add_user(
                session, email=email, name=email.split("@")[0].title(), role=role, clock=clock
            )


def sign_in_link(app: Flask, email: str) -> str:
    with unit_of_work(db.session) as session:
        url = sign_ins.request_sign_in(
            session, email, settings=sign_in_settings(), clock=runtime(app).clock
        )
    assert url is not None, email
    return path_of(url)


def _sign_in_pages(app: Flask, clock: FixedClock, pages: Pages) -> None:
    """Called at the story's present: the expired link was asked for an hour before."""
    clock.advance(-timedelta(hours=1))
    pages.public["sign-in expired"] = sign_in_link(app, "expired-link@example.com")
    clock.advance(timedelta(hours=1))
    pages.public["sign-in"] = "/login"
    pages.public["sign-in confirm"] = sign_in_link(app, MANAGER)
    used = sign_in_link(app, "used-link@example.com")
    with unit_of_work(db.session) as session:
        sign_ins.consume_sign_in(
            session, used.removeprefix("/login/"), settings=sign_in_settings(), clock=clock
        )
    pages.public["sign-in used"] = used
    pages.public["sign-in superseded"] = sign_in_link(app, "newer-link@example.com")
    # A newer link is sent only once the first is a few minutes old (inbox-flooding limit).
    clock.advance(timedelta(minutes=3))
    sign_in_link(app, "newer-link@example.com")
    pages.public["sign-in revoked"] = sign_in_link(app, "left@example.com")
    with unit_of_work(db.session) as session:
        accounts.deactivate_user(session, "left@example.com", clock=clock)
    pages.public["sign-in invalid"] = "/login/not-a-real-token"


def _released(app: Flask, clock: FixedClock, key: str) -> None:
    _package(clock, key, {"payments-api": "7.3.2"})
    _submit(app, clock, key)
    sign_everything(clock, key)
    release(app, clock, key)


def _review_pages(app: Flask, clock: FixedClock, directory: Path, pages: Pages) -> None:
    """payments-api v8 waits for review (with a diff); storefront-web v13 was approved by one of
    its two reviewers; a reviewer who left still holds a link."""
    settings = runtime(app).governance_settings()
    write_version(directory, "payments-api", 8, addresses=["F-1"])
    write_version(directory, "storefront-web", 13)
    sync(app, clock, directory, author=AUTHOR)
    stale = tokens("review", about="(payments-api)")[BOARD]
    with unit_of_work(db.session) as session:
        reviews.resend_review_links(session, "payments-api", settings=settings, clock=clock)
    pages.public["review superseded"] = f"/review/{stale}"
    pages.public["review"] = pages.forms["review"] = (
        f"/review/{tokens('review', about='(payments-api)')[BOARD]}"
    )
    storefront = tokens("review", about="(storefront-web)")
    with unit_of_work(db.session) as session:
        reviews.submit_review(
            session,
            storefront[BOARD],
            reviews.ReviewDecision("approve", consulted="The merchandising team, on a call"),
            settings=settings,
            clock=clock,
        )
    pages.public["review used"] = f"/review/{storefront[BOARD]}"
    pages.public["review decided"] = f"/review/{storefront[UX_LEAD]}"
    with unit_of_work(db.session) as session:
        version = checklists.get_version(session, "payments-api", 8)
        link = ReviewLink(checklist_version_id=version.id, reviewer="left@example.com")
        link.reason = reviews.NEW_VERSION
        url = links.issue_link(
            session,
            link,
            tokens=settings.review_tokens(clock),
            base_url=settings.base_url,
            route="review",
            now=clock.now(),
            ttl=settings.review_ttl,
        )
    pages.public["review revoked"] = path_of(url)
    pages.public["review invalid"] = "/review/not-a-real-token"


def seed(app: Flask, clock: FixedClock, workdir: Path) -> Pages:
    """Build the story from 70 days ago up to `clock`'s time, leaving the clock where it was."""
    pages = Pages()
    now = clock.now()
    directory = checklist_dir(workdir)
    clock.set(now - timedelta(days=70))
    sync(app, clock, directory)
    _approve_all(clock)
    _staff(clock)
    _released(app, clock, OLD_RELEASE)
    expired_report = tokens("report")["partner-ops@example.com"]
    with unit_of_work(db.session) as session:
        reviews.resend_review_links(
            session, "identity-platform", settings=runtime(app).governance_settings(), clock=clock
        )
    expired_review = tokens("review", about="(identity-platform)")[BOARD]

    clock.set(now - timedelta(days=20))
    _released(app, clock, RELEASED)
    report_links = tokens("report", about=RELEASED)
    settings = runtime(app).governance_settings()
    with unit_of_work(db.session) as session:
        filed = findings.submit_report(
            session,
            report_links["refunds-desk@example.com"],
            application="payments-api",
            report=PROBLEM,
            settings=settings,
            clock=clock,
        )
        findings.triage(session, filed.id, classification="uncovered", actor=REVIEWER, clock=clock)
        dead_letter(session, clock)
        review = learning_reviews.open_review(
            session,
            packages.get_package(session, RELEASED),
            filed.application_id,
            trigger=f"{filed.ref} reported with high impact",
            actor=MANAGER,
            now=clock.now(),
            findings=[filed],
        )
        learning_reviews.add_action_item(
            session,
            review,
            title="Add a large-refund scenario to the payments-api checklist",
            owner="payments-team@example.com",
            due_at=clock.now() + timedelta(days=7),
            kind="checklist_change",
            actor=MANAGER,
            now=clock.now(),
            findings=[filed],
        )

    clock.set(now - timedelta(days=9))
    _package(clock, EXPIRED, {"identity-platform": "4.9.0"})
    _submit(app, clock, EXPIRED)
    expired_signoff = _sign_links(f"{EXPIRED} (revision 1)")["sre-oncall@example.com"]

    clock.set(now - timedelta(days=2))
    _review_pages(app, clock, directory, pages)
    _package(clock, CANCELLED, {"payments-api": "7.4.0"})
    _submit(app, clock, CANCELLED)
    revoked = _sign_links(f"{CANCELLED} (revision 1)")[ENGINEER]
    with unit_of_work(db.session) as session:
        signoffs.cancel_and_revoke(
            session, CANCELLED, actor=MANAGER, clock=clock, overdue_policy="block"
        )
    _package(
        clock,
        IN_REVIEW,
        APPS,
        title="November release: refunds queue, checkout vouchers, SSO key rotation",
    )
    _submit(app, clock, IN_REVIEW)
    first = _sign_links(f"{IN_REVIEW} (revision 1)")
    clock.advance(timedelta(hours=3))
    token = first[ENGINEER].removeprefix("/s/")
    flows.submit(app, token, flows.decisions_for(app, token, clock), clock)
    clock.advance(timedelta(hours=3))
    with unit_of_work(db.session) as session:
        signoffs.edit_and_reissue(
            session,
            IN_REVIEW,
            packages.PackageChanges(
                applications=(
                    packages.ApplicationSpec("payments-api", "7.4.1", "Hotfix for refund rounding"),
                    packages.ApplicationSpec("storefront-web", APPS["storefront-web"], ""),
                    packages.ApplicationSpec("identity-platform", APPS["identity-platform"], ""),
                )
            ),
            actor=MANAGER,
            clock=clock,
            links=runtime(app).link_settings(),
        )
    second = _sign_links(f"{IN_REVIEW} (revision 2)")
    _package(clock, LONG_KEY, APPS, title="Refunds queue, checkout vouchers and SSO key rotation")
    _submit(app, clock, LONG_KEY)
    _package(clock, DRAFT, {"payments-api": "7.5.0"})
    _package(clock, HOTFIX, {"storefront-web": "2026.11.2-hotfix1"}, title="Checkout hotfix")
    _submit(app, clock, HOTFIX)
    with unit_of_work(db.session) as session:
        emergencies.declare(
            session,
            HOTFIX,
            reason="Card payments fail at checkout since the CDN change",
            actor=MANAGER,
            clock=clock,
            links=runtime(app).link_settings(),
        )
    approval = tokens("emergency", about=HOTFIX)["sre-lead@example.com"]
    with unit_of_work(db.session) as session:
        # A long unbroken scenario: its snippet must wrap on a phone.
        add_proposal(session, clock, "Reconcile-" * 30 + " the refunds of a split payment")
    clock.set(now)
    _sign_in_pages(app, clock, pages)

    pages.staff.update(
        {
            "dashboard": "/",
            "assemble": "/packages/new",
            "package in review": f"/packages/{IN_REVIEW}",
            "package with a long key": f"/packages/{LONG_KEY}",
            "package draft": f"/packages/{DRAFT}",
            "package in emergency": f"/packages/{HOTFIX}",
            "package released": f"/packages/{RELEASED}",
            "package edit": f"/packages/{IN_REVIEW}/edit",
            "timeline": f"/packages/{IN_REVIEW}/timeline",
            "timeline released": f"/packages/{RELEASED}/timeline",
            "checklists": "/checklists",
            "checklist application": "/checklists/payments-api",
            "checklist version": "/checklists/payments-api/7",
            "checklist diff": "/checklists/payments-api/diff?from=7&to=8",
            "governance": "/governance",
            "findings": "/governance/findings",
            "finding": f"/governance/findings/{filed.id}",
            "learning reviews": "/learning-reviews",
            "learning review": f"/learning-reviews/{review.id}",
            "outbox": "/outbox/",
            "accounts": "/users/",
            "not found": "/packages/no-such-package",
        }
    )
    pages.public.update(
        {
            "sign-off engineer": second[ENGINEER],
            "sign-off key user": second[KEY_USER],
            "sign-off used": first[ENGINEER],
            "sign-off superseded": first["sre-oncall@example.com"],
            "sign-off expired": expired_signoff,
            "sign-off revoked": revoked,
            "sign-off invalid": "/s/not-a-real-token",
            "resend": "/s/resend",
            "report": f"/report/{report_links['settlement-lead@example.com']}",
            "report used": f"/report/{report_links['refunds-desk@example.com']}",
            "report expired": f"/report/{expired_report}",
            "report invalid": "/report/not-a-real-token",
            "review expired": f"/review/{expired_review}",
            "emergency approval": f"/emergency/{approval}",
            "emergency approval invalid": "/emergency/not-a-real-token",
            "not found": "/no-such-page",
        }
    )
    pages.forms.update(
        {
            "sign-off engineer": second[ENGINEER],
            "sign-off key user": second[KEY_USER],
            "report": f"/report/{report_links['partner-ops@example.com']}",
        }
    )
    return pages
