"""Post-release confirmation: the worker asks each key user of each released application
"still working after go-live?", reminds before the window closes, and records the answer."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.orm import Session

from gatekeeper.db.models import Application, ConfirmationLink, Finding, Package
from gatekeeper.db.queries import active_applications
from gatekeeper.domain import confirmation as rules
from gatekeeper.domain import finding as finding_rules
from gatekeeper.domain import package as lifecycle
from gatekeeper.domain.checklist import MAX_CONFIRM_HOURS
from gatekeeper.domain.clock import Clock
from gatekeeper.domain.errors import LinkUnusable, ValidationFailed
from gatekeeper.notify.outbox import queue_email
from gatekeeper.services import audit, findings, packages
from gatekeeper.services.checklists import checklist_of
from gatekeeper.services.governance import GovernanceSettings
from gatekeeper.services.links import (
    SUPERSEDED,
    USED,
    issue_link,
    load_link,
    retire_links,
    unusable,
    use_link,
)
from gatekeeper.signing import TokenService

PURPOSE = "confirmation"  # the salt: a token made for another kind of link is refused here
MAIL_LINK_KIND = "confirmation"
ROUTE = "confirm"
# Windows are at most this long after the release: older releases are not looked at again.
_LOOK_BACK = timedelta(hours=2 * MAX_CONFIRM_HOURS)


def _fmt(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def _tokens(settings: GovernanceSettings, clock: Clock) -> TokenService:
    # The signature outlives any window; the row's expires_at (the window's end) is what ends it.
    return TokenService(settings.secret_keys, PURPOSE, MAX_CONFIRM_HOURS * 3600, clock)


def windows_of(session: Session, package: Package) -> list[tuple[Application, rules.Window]]:
    """Each released application of the package that asks for confirmation, with its window."""
    if package.released_at is None:
        return []
    found = []
    for target, application in active_applications(session, package.id):
        if target.checklist_version is None:
            continue
        window = rules.window_of(
            application.slug, checklist_of(target.checklist_version), package.released_at
        )
        if window is not None:
            found.append((application, window))
    return found


def _ask(
    session: Session,
    package: Package,
    application: Application,
    window: rules.Window,
    key_user: str,
    *,
    reminder: bool,
    settings: GovernanceSettings,
    clock: Clock,
) -> None:
    now = clock.now()
    link = ConfirmationLink(
        package_id=package.id,
        application_id=application.id,
        key_user=key_user,
        reminder=reminder,
    )
    url = issue_link(
        session,
        link,
        tokens=_tokens(settings, clock),
        base_url=settings.base_url,
        route=ROUTE,
        now=now,
        ttl=window.closes_at - now,
    )
    audit.record_package_event(
        session,
        package,
        action=f"confirmation.{'reminded' if reminder else 'requested'}",
        actor=audit.SYSTEM,
        subject=f"{application.slug}: {key_user}",
        now=now,
        details={"link": link.id, "closes_at": window.closes_at.isoformat()},
    )
    queue_email(
        session,
        to=key_user,
        template="confirmation_request",
        context={
            "package": package,
            "application": application,
            "url": url,
            "reminder": reminder,
            "closes_at": _fmt(window.closes_at),
        },
        now=now,
        link=(MAIL_LINK_KIND, link.id),
    )


def send_confirmation_requests(
    session: Session, *, settings: GovernanceSettings, clock: Clock
) -> dict[str, int]:
    """Ask every key user whose application's window has opened and who was not asked yet;
    remind, once, those who have not answered when the reminder falls due."""
    now = clock.now()
    counts = {"confirmations_asked": 0, "confirmations_reminded": 0}
    released = session.scalars(
        sa.select(Package)
        .where(Package.state == lifecycle.RELEASED, Package.released_at > now - _LOOK_BACK)
        .order_by(Package.id)
    ).all()
    for package in released:
        due = [(a, w) for a, w in windows_of(session, package) if w.opens_at <= now < w.closes_at]
        if not due:
            continue
        # Several workers: the package's lock makes one of them ask, the other see the ask.
        packages.lock_package(session, package.id)
        asked: dict[tuple[int, str], list[ConfirmationLink]] = {}
        for link in session.scalars(
            sa.select(ConfirmationLink).where(ConfirmationLink.package_id == package.id)
        ):
            asked.setdefault((link.application_id, link.key_user), []).append(link)
        for application, window in due:
            for key_user in window.key_users:
                links = asked.get((application.id, key_user), [])
                if any(link.answer is not None for link in links):
                    continue
                if links and (now < window.remind_at or any(link.reminder for link in links)):
                    continue
                retire_links(
                    session,
                    ConfirmationLink,
                    ConfirmationLink.package_id == package.id,
                    ConfirmationLink.application_id == application.id,
                    ConfirmationLink.key_user == key_user,
                )
                _ask(
                    session,
                    package,
                    application,
                    window,
                    key_user,
                    reminder=bool(links),
                    settings=settings,
                    clock=clock,
                )
                counts["confirmations_reminded" if links else "confirmations_asked"] += 1
    return counts


@dataclass(frozen=True)
class ConfirmationView:
    """What a confirmation link shows: the release, the application and its scenarios."""

    link: ConfirmationLink
    package: Package
    application: Application
    version_label: str
    scenarios: tuple[str, ...]
    closes_at: datetime
    # The checklist version the release was gated with (what a proposed scenario was missing from).
    checklist_version_id: int | None = None


def _check_usable(link: ConfirmationLink, now: datetime) -> None:
    what = f"{link.application.slug} in release {link.package.key}"
    if link.state == USED:
        said = "it still works" if link.answer == rules.WORKS else "you found a problem"
        used = _fmt(link.used_at) if link.used_at else "earlier"
        raise LinkUnusable(
            "used",
            f"You already answered for {what} on {used}: {said}. Thank you.",
            details={"used_at": used},
        )
    if link.state == SUPERSEDED:
        raise LinkUnusable(
            "superseded", f"A newer link about {what} was emailed to you; use the newest email."
        )
    if now >= link.expires_at:
        raise LinkUnusable(
            "expired",
            f"The time to confirm {what} has passed. If something stopped working, tell the "
            "release manager or use the problem-report link of the release email.",
        )


def moot_links(session: Session, ids: Collection[int], now: datetime) -> dict[int, str]:
    """Why each of these confirmation links can no longer be used, for those that cannot."""
    links = session.scalars(
        sa.select(ConfirmationLink).where(ConfirmationLink.id.in_(sorted(ids)))
    ).all()
    return unusable(links, lambda link: _check_usable(link, now))


def open_confirmation(
    session: Session, token: str, *, settings: GovernanceSettings, clock: Clock
) -> ConfirmationView:
    """What the page shows. Reading never changes anything: mail scanners open links."""
    link = load_link(
        session,
        token,
        tokens=_tokens(settings, clock),
        model=ConfirmationLink,
        expired="This link has expired.",
    )
    _check_usable(link, clock.now())
    target = next(
        t for t, a in active_applications(session, link.package_id) if a.id == link.application_id
    )
    checklist = checklist_of(target.checklist_version) if target.checklist_version else None
    return ConfirmationView(
        link,
        link.package,
        link.application,
        target.version_label,
        checklist.user_validation.scenarios if checklist else (),
        link.expires_at,
        target.checklist_version_id,
    )


def submit_confirmation(
    session: Session,
    token: str,
    *,
    answer: str,
    report: finding_rules.Report | None = None,
    settings: GovernanceSettings,
    clock: Clock,
) -> Finding | None:
    """Record the key user's answer; the link works once (conditional UPDATE). A problem is
    filed as a finding, as the release email's report form files it; returns that finding."""
    if answer not in rules.ANSWERS:
        raise ValidationFailed("answer that it still works, or report the problem")
    if answer == rules.PROBLEM and report is None:
        raise ValidationFailed("describe the problem")
    cleaned = report.validated() if report is not None and answer == rules.PROBLEM else None
    view = open_confirmation(session, token, settings=settings, clock=clock)
    now = clock.now()
    use_link(
        session,
        ConfirmationLink,
        view.link.id,
        now=now,
        used="You already answered for this release.",
    )
    link = view.link
    link.answer = answer
    filed = None
    if cleaned is not None:
        filed = findings.record_report(
            session,
            package=view.package,
            application=view.application.slug,
            reporter=link.key_user,
            report=cleaned,
            settings=settings,
            clock=clock,
        )
        link.finding_id = filed.id
    session.flush()
    audit.record_package_event(
        session,
        view.package,
        action="confirmation.answered",
        actor=link.key_user,
        subject=f"{view.application.slug}: {answer}",
        now=now,
        details={"link": link.id, "answer": answer, "finding": filed.ref if filed else None},
    )
    return filed
