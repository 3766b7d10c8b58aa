"""Sign-off by emailed link: issue links, open them (read-only), record decisions, remind."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, ClassVar

import sqlalchemy as sa
from sqlalchemy import orm
from sqlalchemy.engine import CursorResult
from sqlalchemy.orm import Session

from gatekeeper.db.models import Package, Signoff, SignoffLink, SignoffRequest
from gatekeeper.domain import gate as gate_rules
from gatekeeper.domain import package as lifecycle
from gatekeeper.domain import signoff as signoff_rules
from gatekeeper.domain.checklist import Checklist, Item, Section
from gatekeeper.domain.clock import Clock
from gatekeeper.domain.errors import (
    GatekeeperError,
    LinkUnusable,
    ValidationFailed,
)
from gatekeeper.notify.outbox import queue_email
from gatekeeper.services import audit, packages
from gatekeeper.services.checklists import checklist_of
from gatekeeper.services.links import (
    ACTIVE,
    SUPERSEDED,
    USED,
    LinkSigning,
    RecipientLimit,
    issue_link,
    load_link,
    may_send_another,
    retire_links,
    unusable,
    use_link,
)

LINK_PURPOSE = "signoff"
MAIL_LINK_KIND = "signoff"  # how an outbox row names the sign-off link it carries
REVOKED = "revoked"
# How often opening one link may append a `link.opened` audit event.
OPEN_RECORD_EVERY = timedelta(hours=1)
# "Send me a fresh link": never replaces a link younger than 10 minutes (its email is probably
# on its way), and sends nothing to an address that got 3 sign-off links in the past hour
# (any package, any cause: submit, edits and reminders count too).
RESEND_LIMIT = RecipientLimit(keep_newer_than=timedelta(minutes=10), per_hour=3)


@dataclass(frozen=True)
class LinkSettings(LinkSigning):
    purpose: ClassVar[str] = LINK_PURPOSE
    ttl: timedelta = timedelta(hours=168)
    reminder_after: timedelta = timedelta(hours=48)
    escalate_after: timedelta = timedelta(hours=96)
    expiry_warning: timedelta = timedelta(hours=24)
    overdue_policy: str = gate_rules.BLOCK_OVERDUE


@dataclass(frozen=True)
class RequestView:
    """One thing the signer is asked to decide, with everything the page must show."""

    request: SignoffRequest
    application: str
    version_label: str
    change_summary: str
    checklist: Checklist
    section: Section | None = None
    item: Item | None = None

    @property
    def on_behalf_of(self) -> str | None:
        return self.request.on_behalf_of

    @property
    def label(self) -> str:
        if self.item is not None and self.section is not None:
            return f"{self.application}: {self.section.title} › {self.item.text}"
        return f"{self.application}: confirm it still works for you (key-user validation)"


@dataclass(frozen=True)
class LinkView:
    link: SignoffLink
    package: Package
    requests: list[RequestView] = field(default_factory=list)


def _fmt(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def _request_views(session: Session, requests: Sequence[SignoffRequest]) -> list[RequestView]:
    views: list[RequestView] = []
    for request in requests:
        target = request.package_application
        if target.checklist_version is None:
            continue
        checklist = checklist_of(target.checklist_version)
        section = item = None
        if request.kind == signoff_rules.ITEM:
            for s, i in checklist.items():
                if (s.id, i.id) == (request.section_id, request.item_id):
                    section, item = s, i
        views.append(
            RequestView(
                request,
                target.application.slug,
                target.version_label,
                target.change_summary,
                checklist,
                section,
                item,
            )
        )
    return views


def _pending_for_package(session: Session, package: Package) -> list[SignoffRequest]:
    return list(
        session.scalars(
            sa.select(SignoffRequest)
            .where(
                SignoffRequest.package_id == package.id,
                SignoffRequest.state == signoff_rules.PENDING,
            )
            .order_by(SignoffRequest.signer, SignoffRequest.id)
        )
    )


def issue_links(
    session: Session,
    package: Package,
    *,
    settings: LinkSettings,
    clock: Clock,
    signers: Sequence[str] | None = None,
    reminder: bool = False,
    review_due: str = "",
) -> list[SignoffLink]:
    """One link and one email per person with pending requests; earlier links of theirs die.
    With `review_due`, the email asks for the post-implementation review of an emergency
    release, due then."""
    now = clock.now()
    by_signer: dict[str, list[SignoffRequest]] = {}
    for request in _pending_for_package(session, package):
        if signers is None or request.signer in signers:
            by_signer.setdefault(request.signer, []).append(request)
    if not by_signer:
        return []
    retire_links(
        session,
        SignoffLink,
        SignoffLink.package_id == package.id,
        SignoffLink.signer.in_(list(by_signer)),
    )
    tokens = settings.tokens(clock)
    links: list[SignoffLink] = []
    for signer, requests in by_signer.items():
        link = SignoffLink(package_id=package.id, signer=signer, revision=package.revision)
        url = issue_link(
            session,
            link,
            tokens=tokens,
            base_url=settings.base_url,
            route="s",
            now=now,
            ttl=settings.ttl,
        )
        for request in requests:
            request.link_id = link.id
        audit.record_package_event(
            session,
            package,
            action="link.issued",
            actor=audit.SYSTEM,
            subject=f"sign-off link for {signer}",
            now=now,
            details={"link": link.id, "requests": [r.id for r in requests], "reminder": reminder},
        )
        queue_email(
            session,
            to=signer,
            template="signoff_request",
            context={
                "package": package,
                "groups": _groups(_request_views(session, requests)),
                "url": url,
                "expires_at": _fmt(link.expires_at),
                "reminder": reminder,
                "review_due": review_due,
            },
            now=now,
            link=(MAIL_LINK_KIND, link.id),
        )
        links.append(link)
    return links


def submit_for_signoff(
    session: Session, key: str, *, actor: str, clock: Clock, links: LinkSettings
) -> Package:
    """Submit the package and email every signer their link."""
    now = clock.now()
    before = packages.watch_gate(session, key, now=now, overdue_policy=links.overdue_policy)
    package = packages.submit_package(session, key, actor=actor, clock=clock)
    issue_links(session, package, settings=links, clock=clock)
    packages.report_gate_change(session, before, key, now=now, overdue_policy=links.overdue_policy)
    return package


def edit_and_reissue(
    session: Session,
    key: str,
    changes: packages.PackageChanges,
    *,
    actor: str,
    clock: Clock,
    links: LinkSettings,
) -> Package:
    """Edit the package; when that makes a new revision, every earlier link dies and each person
    who still has something to sign gets a new one for the new revision."""
    before = packages.get_package(session, key, for_update=True).revision
    now = clock.now()
    gate = packages.watch_gate(session, key, now=now, overdue_policy=links.overdue_policy)
    package = packages.edit_package(session, key, changes, actor=actor, clock=clock)
    if package.revision != before:
        supersede_links(session, package)
        issue_links(session, package, settings=links, clock=clock)
    packages.report_gate_change(session, gate, key, now=now, overdue_policy=links.overdue_policy)
    return package


def cancel_and_revoke(
    session: Session, key: str, *, actor: str, clock: Clock, overdue_policy: str
) -> Package:
    now = clock.now()
    before = packages.watch_gate(session, key, now=now, overdue_policy=overdue_policy)
    package = packages.cancel_package(session, key, actor=actor, clock=clock)
    retire_links(session, SignoffLink, SignoffLink.package_id == package.id, state=REVOKED)
    packages.report_gate_change(session, before, key, now=now, overdue_policy=overdue_policy)
    return package


def supersede_links(session: Session, package: Package) -> None:
    retire_links(session, SignoffLink, SignoffLink.package_id == package.id)


def _groups(views: Sequence[RequestView]) -> list[dict[str, Any]]:
    groups: dict[str, dict[str, Any]] = {}
    for view in views:
        group = groups.setdefault(
            view.application,
            {
                "application": view.application,
                "version": view.version_label,
                "change_summary": view.change_summary,
                "lines": [],
            },
        )
        if view.item is not None and view.section is not None:
            group["lines"].append(f"{view.section.title}: {view.item.text}")
        else:
            scenarios = "; ".join(view.checklist.user_validation.scenarios)
            group["lines"].append(f"Key-user validation — check that you can: {scenarios}")
    return list(groups.values())


def _load(session: Session, token: str, settings: LinkSettings, clock: Clock) -> SignoffLink:
    return load_link(
        session,
        token,
        tokens=settings.tokens(clock),
        model=SignoffLink,
        expired="This link has expired. Ask for a fresh one.",
    )


def _check_usable(link: SignoffLink, package: Package, now: datetime) -> None:
    if link.state == USED:
        used = _fmt(link.used_at) if link.used_at else "earlier"
        raise LinkUnusable("used", f"You already answered on {used}.", details={"used_at": used})
    if link.state == REVOKED and link.handed_at is not None:
        raise LinkUnusable(
            "handed",
            f"You are recorded as away, so what this link asked in release {package.key} was "
            "handed to your deputies on " + _fmt(link.handed_at) + "; each was emailed a link "
            "of their own. Nothing to do.",
        )
    if link.state == REVOKED or not (
        package.state == lifecycle.IN_REVIEW or packages.in_post_implementation_review(package)
    ):
        raise LinkUnusable(
            "revoked", f"Release {package.key} no longer needs this sign-off ({package.state})."
        )
    if link.state == SUPERSEDED or link.revision != package.revision:
        raise LinkUnusable(
            "superseded",
            f"Release {package.key} changed since this link was sent; a new link was emailed "
            "to you.",
        )
    if now >= link.expires_at:
        raise LinkUnusable("expired", "This link has expired. Ask for a fresh one.")


def moot_links(session: Session, ids: Collection[int], now: datetime) -> dict[int, str]:
    """Why each of these sign-off links can no longer be used (used, revoked, replaced,
    expired, or everything on it answered), for those that cannot."""
    links = session.scalars(
        sa.select(SignoffLink)
        .where(SignoffLink.id.in_(sorted(ids)))
        .options(orm.joinedload(SignoffLink.package))
    ).all()
    asking = set(
        session.scalars(
            sa.select(SignoffRequest.link_id)
            .where(
                SignoffRequest.link_id.in_(sorted(ids)),
                SignoffRequest.state == signoff_rules.PENDING,
            )
            .distinct()
        )
    )

    def check(link: SignoffLink) -> None:
        _check_usable(link, link.package, now)
        if link.id not in asking:
            raise LinkUnusable("used", "Everything on this link has been answered already.")

    return unusable(links, check)


def open_link(session: Session, token: str, *, settings: LinkSettings, clock: Clock) -> LinkView:
    """What a link shows. Reading never changes anything: mail scanners open links too."""
    now = clock.now()
    link = _load(session, token, settings, clock)
    package = link.package
    _check_usable(link, package, now)
    requests = list(
        session.scalars(
            sa.select(SignoffRequest)
            .where(SignoffRequest.link_id == link.id, SignoffRequest.state == signoff_rules.PENDING)
            .order_by(SignoffRequest.id)
        )
    )
    views = _request_views(session, requests)
    for view in views:
        try:
            signoff_rules.check_may_sign(
                signer=link.signer,
                kind=view.request.kind,
                assembler=package.assembled_by,
                checklist=view.checklist,
                item=view.item,
                on_behalf_of=view.request.on_behalf_of,
            )
        except GatekeeperError:
            raise LinkUnusable(
                "revoked", "You are no longer a signer of this release; nothing to do."
            ) from None
    if not views:
        raise LinkUnusable("used", "Everything on this link has been answered already.")
    return LinkView(link, package, views)


def open_worth_recording(link: SignoffLink, now: datetime) -> bool:
    """The first open of a link is recorded, then at most one an hour (OPEN_RECORD_EVERY)."""
    return link.open_recorded_at is None or now - link.open_recorded_at >= OPEN_RECORD_EVERY


def record_opened(session: Session, view: LinkView, *, clock: Clock) -> bool:
    """Who saw what, and when, as an audit event; False when an open was recorded within the
    hour. Bounded because anyone holding the link (or a mail scanner) can open it without end,
    and every event moves the audit head that the gate and token caches are keyed on. The
    conditional UPDATE decides, across processes, which one open of the hour is written."""
    now = clock.now()
    link_id, requests = view.link.id, [v.request.id for v in view.requests]
    claimed: CursorResult[Any] = session.execute(  # type: ignore[assignment]
        sa.update(SignoffLink)
        .where(
            SignoffLink.id == link_id,
            sa.or_(
                SignoffLink.open_recorded_at.is_(None),
                SignoffLink.open_recorded_at <= now - OPEN_RECORD_EVERY,
            ),
        )
        .values(open_recorded_at=now)
        .execution_options(synchronize_session=False)
    )
    if claimed.rowcount != 1:
        return False
    audit.record_package_event(
        session,
        view.package,
        action="link.opened",
        actor=view.link.signer,
        subject=f"sign-off link {link_id}",
        now=now,
        details={"requests": requests},
    )
    return True


def submit_link(
    session: Session,
    token: str,
    decisions: Mapping[int, signoff_rules.Decision],
    *,
    settings: LinkSettings,
    clock: Clock,
) -> list[Signoff]:
    """Record every decision of one link at once; the link is used exactly once."""
    now = clock.now()
    link = _load(session, token, settings, clock)
    packages.lock_package(session, link.package_id)
    session.refresh(link)
    view = open_link(session, token, settings=settings, clock=clock)
    before = packages.watch_gate(
        session, view.package.key, now=now, overdue_policy=settings.overdue_policy
    )
    missing = [v.label for v in view.requests if v.request.id not in decisions]
    if missing:
        raise ValidationFailed("decide every item before sending", details={"missing": missing})
    for v in view.requests:
        signoff_rules.validate_decision(
            decisions[v.request.id],
            item=v.item,
            scenarios=len(v.checklist.user_validation.scenarios),
        )
    use_link(session, SignoffLink, link.id, now=now, used="You already answered.")
    recorded = [
        packages.record_signoff(session, v.request.id, decisions[v.request.id], clock=clock)
        for v in view.requests
    ]
    after = _after_decisions(
        session, view.package, link.signer, recorded, settings=settings, now=now
    )
    packages.report_gate_change(
        session,
        before,
        view.package.key,
        now=now,
        overdue_policy=settings.overdue_policy,
        after=after,
    )
    return recorded


def _describe(signoff: Signoff) -> str:
    what = signoff.item_id or "key-user validation"
    text = f"{signoff.package_application.application.slug} / {what}: "
    text += signoff.decision.replace("_", " ")
    if signoff.comment:
        text += f" — {signoff.comment}"
    return text


def _after_decisions(
    session: Session,
    package: Package,
    signer: str,
    recorded: Sequence[Signoff],
    *,
    settings: LinkSettings,
    now: datetime,
) -> gate_rules.GateResult:
    """Confirm to the signer; tell the release manager about failures and an opening gate.
    The gate after the decisions."""
    queue_email(
        session,
        to=signer,
        template="signoff_confirmation",
        context={
            "package": package,
            "lines": [_describe(s) for s in recorded],
            "signed_at": _fmt(now),
        },
        now=now,
    )
    result = gate_rules.evaluate(
        packages.gate_input(session, package.key, now=now, overdue_policy=settings.overdue_policy)
    )
    negative = [s for s in recorded if s.decision in (signoff_rules.FAIL, signoff_rules.PROBLEM)]
    if negative:
        _tell_manager(
            session,
            package,
            "a problem was reported"
            if any(s.kind == "key_user" for s in negative)
            else "a check failed",
            [f"{signer}: {_describe(s)}" for s in negative],
            result,
            settings,
            now,
        )
    if result.status == gate_rules.OPEN and announce_open(session, package):
        _tell_manager(
            session, package, "the gate is open", ["Every sign-off is in."], result, settings, now
        )
    return result


def announce_open(session: Session, package: Package) -> bool:
    """True exactly once per revision, even when the last two sign-offs arrive together."""
    claimed: CursorResult[Any] = session.execute(  # type: ignore[assignment]
        sa.update(Package)
        .where(
            Package.id == package.id,
            sa.or_(
                Package.open_announced_revision.is_(None),
                Package.open_announced_revision < package.revision,
            ),
        )
        .values(open_announced_revision=package.revision)
        .execution_options(synchronize_session=False)
    )
    return claimed.rowcount == 1


def _tell_manager(
    session: Session,
    package: Package,
    headline: str,
    lines: list[str],
    result: gate_rules.GateResult,
    settings: LinkSettings,
    now: datetime,
) -> None:
    queue_email(
        session,
        to=package.assembled_by,
        template="manager_attention",
        context={
            "package": package,
            "headline": headline,
            "lines": lines,
            "gate": result,
            "package_url": f"{settings.base_url}/packages/{package.key}",
        },
        now=now,
    )


def resend_link(
    session: Session, *, email: str, package_key: str, settings: LinkSettings, clock: Clock
) -> None:
    """Send a fresh link if this person has pending requests and RESEND_LIMIT allows it; the
    caller's answer never differs."""
    package = session.scalar(sa.select(Package).where(Package.key == package_key.strip()))
    if package is None or package.state != lifecycle.IN_REVIEW:
        return
    signer = email.strip().lower()
    packages.lock_package(session, package.id)
    if not may_send_another(
        session,
        SignoffLink,
        recipient=SignoffLink.signer == signer,
        replaced=sa.and_(SignoffLink.signer == signer, SignoffLink.package_id == package.id),
        now=clock.now(),
        limit=RESEND_LIMIT,
    ):
        return
    issue_links(session, package, settings=settings, clock=clock, signers=[signer])


def send_reminders(session: Session, *, settings: LinkSettings, clock: Clock) -> dict[str, int]:
    """Remind pending signers, warn before links expire, and tell managers who is still missing."""
    now = clock.now()
    counts = {"reminded": 0, "expiry_warnings": 0, "escalations": 0}
    due = session.scalars(
        sa.select(SignoffLink)
        .join(Package, Package.id == SignoffLink.package_id)
        .where(
            SignoffLink.state == ACTIVE,
            SignoffLink.reminded_at.is_(None),
            SignoffLink.created_at <= now - settings.reminder_after,
            SignoffLink.expires_at > now,
            Package.state == lifecycle.IN_REVIEW,
        )
        .order_by(SignoffLink.id)
    ).all()
    for link in due:
        for fresh in issue_links(
            session,
            link.package,
            settings=settings,
            clock=clock,
            signers=[link.signer],
            reminder=True,
        ):
            fresh.reminded_at = now
            counts["reminded"] += 1
    expiring = session.scalars(
        sa.select(SignoffLink).where(
            SignoffLink.state == ACTIVE,
            SignoffLink.expiry_warned_at.is_(None),
            SignoffLink.expires_at > now,
            SignoffLink.expires_at <= now + settings.expiry_warning,
        )
    ).all()
    for link in expiring:
        link.expiry_warned_at = now
        queue_email(
            session,
            to=link.signer,
            template="link_expiring",
            context={
                "package": link.package,
                "expires_at": _fmt(link.expires_at),
                "resend_url": f"{settings.base_url}/s/resend",
            },
            now=now,
            link=(MAIL_LINK_KIND, link.id),
        )
        counts["expiry_warnings"] += 1
    counts["escalations"] = _escalate(session, settings=settings, now=now)
    return counts


def _escalate(session: Session, *, settings: LinkSettings, now: datetime) -> int:
    # Measured from when the person was first asked: reminders issue new links, not new asks.
    first_asked = (
        sa.select(SignoffRequest.link_id, sa.func.min(SignoffRequest.created_at).label("asked"))
        .where(SignoffRequest.state == signoff_rules.PENDING)
        .group_by(SignoffRequest.link_id)
        .subquery()
    )
    stale = session.scalars(
        sa.select(SignoffLink)
        .join(Package, Package.id == SignoffLink.package_id)
        .join(first_asked, first_asked.c.link_id == SignoffLink.id)
        .where(
            SignoffLink.state == ACTIVE,
            SignoffLink.escalated_at.is_(None),
            first_asked.c.asked <= now - settings.escalate_after,
            Package.state == lifecycle.IN_REVIEW,
        )
        .order_by(SignoffLink.package_id, SignoffLink.signer)
    ).all()
    by_package: dict[int, list[SignoffLink]] = {}
    for link in stale:
        by_package.setdefault(link.package_id, []).append(link)
    for links in by_package.values():
        package = links[0].package
        for link in links:
            link.escalated_at = now
        result = gate_rules.evaluate(
            packages.gate_input(
                session, package.key, now=now, overdue_policy=settings.overdue_policy
            )
        )
        _tell_manager(
            session,
            package,
            "sign-offs are still missing",
            [f"{link.signer} has not answered yet" for link in links],
            result,
            settings,
            now,
        )
    return len(by_package)
