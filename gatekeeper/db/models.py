"""Database tables as typed SQLAlchemy 2.0 models."""

from __future__ import annotations

from datetime import date, datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from gatekeeper.db.base import Base, UTCDateTime, str_enum

EMAIL = sa.String(254)

VERSION_STATES = ("pending_review", "approved", "changes_requested", "superseded")
REVIEW_OUTCOMES = ("approved", "changes_requested", "reaffirmed")


class Application(Base):
    __tablename__ = "applications"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(sa.String(64), unique=True)
    title: Mapped[str] = mapped_column(sa.String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())

    versions: Mapped[list[ChecklistVersion]] = relationship(
        back_populates="application", order_by="ChecklistVersion.version"
    )


class ChecklistVersion(Base):
    """One immutable version of an application's checklist, content-addressed by sha256."""

    __tablename__ = "checklist_versions"
    __table_args__ = (sa.UniqueConstraint("application_id", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    application_id: Mapped[int] = mapped_column(sa.ForeignKey("applications.id"), index=True)
    version: Mapped[int]
    sha256: Mapped[str] = mapped_column(sa.String(64))
    content: Mapped[str] = mapped_column(sa.Text)
    source_yaml: Mapped[str] = mapped_column(sa.Text)
    source_path: Mapped[str] = mapped_column(sa.String(500))
    author: Mapped[str | None] = mapped_column(EMAIL)
    state: Mapped[str] = mapped_column(str_enum("checklist_version_state", *VERSION_STATES))
    synced_at: Mapped[datetime] = mapped_column(UTCDateTime())
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    application: Mapped[Application] = relationship(back_populates="versions")
    reviews: Mapped[list[GovernanceReview]] = relationship(
        back_populates="checklist_version", order_by="GovernanceReview.reviewed_at"
    )


class GovernanceReview(Base):
    __tablename__ = "governance_reviews"

    id: Mapped[int] = mapped_column(primary_key=True)
    checklist_version_id: Mapped[int] = mapped_column(
        sa.ForeignKey("checklist_versions.id"), index=True
    )
    reviewer: Mapped[str] = mapped_column(EMAIL)
    outcome: Mapped[str] = mapped_column(str_enum("review_outcome", *REVIEW_OUTCOMES))
    consulted: Mapped[str] = mapped_column(sa.Text, default="")
    notes: Mapped[str] = mapped_column(sa.Text, default="")
    reviewed_at: Mapped[datetime] = mapped_column(UTCDateTime())

    checklist_version: Mapped[ChecklistVersion] = relationship(back_populates="reviews")


PACKAGE_STATES = ("draft", "in_review", "released", "cancelled")
SIGNOFF_KINDS = ("item", "key_user")
REQUEST_STATES = ("pending", "signed", "stale", "revoked")
DECISIONS = ("pass", "fail", "not_applicable", "confirmed", "problem")


class Package(Base):
    """A release package: applications and versions that ship together, and its sign-off state."""

    __tablename__ = "packages"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(sa.String(64), unique=True)
    title: Mapped[str] = mapped_column(sa.String(200))
    environment: Mapped[str] = mapped_column(sa.String(64))
    planned_for: Mapped[date | None] = mapped_column(sa.Date)
    assembled_by: Mapped[str] = mapped_column(EMAIL)
    state: Mapped[str] = mapped_column(str_enum("package_state", *PACKAGE_STATES), index=True)
    revision: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    submitted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    released_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    released_by: Mapped[str | None] = mapped_column(sa.String(254))
    release_digest: Mapped[str | None] = mapped_column(sa.String(80))
    release_notes: Mapped[str] = mapped_column(sa.Text, default="")
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The revision whose opening gate was announced; guards against announcing it twice.
    open_announced_revision: Mapped[int | None]

    applications: Mapped[list[PackageApplication]] = relationship(
        back_populates="package", order_by="PackageApplication.id"
    )
    revisions: Mapped[list[PackageRevision]] = relationship(
        back_populates="package", order_by="PackageRevision.revision"
    )


class PackageApplication(Base):
    __tablename__ = "package_applications"
    __table_args__ = (sa.UniqueConstraint("package_id", "application_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    package_id: Mapped[int] = mapped_column(sa.ForeignKey("packages.id"), index=True)
    application_id: Mapped[int] = mapped_column(sa.ForeignKey("applications.id"))
    version_label: Mapped[str] = mapped_column(sa.String(100))
    change_summary: Mapped[str] = mapped_column(sa.Text, default="")
    checklist_version_id: Mapped[int | None] = mapped_column(sa.ForeignKey("checklist_versions.id"))
    changed_in_revision: Mapped[int] = mapped_column(default=0)
    removed_in_revision: Mapped[int | None]
    requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    package: Mapped[Package] = relationship(back_populates="applications")
    application: Mapped[Application] = relationship()
    checklist_version: Mapped[ChecklistVersion | None] = relationship()


class PackageRevision(Base):
    """What changed at each revision of a submitted package, and what carried forward."""

    __tablename__ = "package_revisions"
    __table_args__ = (sa.UniqueConstraint("package_id", "revision"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    package_id: Mapped[int] = mapped_column(sa.ForeignKey("packages.id"))
    revision: Mapped[int]
    actor: Mapped[str] = mapped_column(sa.String(254))
    changes: Mapped[str] = mapped_column(sa.Text)  # JSON: what changed, per application
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())

    package: Mapped[Package] = relationship(back_populates="revisions")


class SignoffRequest(Base):
    """One person asked to decide one requirement (an item, or an application's validation)."""

    __tablename__ = "signoff_requests"
    __table_args__ = (sa.Index("ix_signoff_requests_package_state", "package_id", "state"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    package_id: Mapped[int] = mapped_column(sa.ForeignKey("packages.id"))
    package_application_id: Mapped[int] = mapped_column(
        sa.ForeignKey("package_applications.id"), index=True
    )
    kind: Mapped[str] = mapped_column(str_enum("signoff_request_kind", *SIGNOFF_KINDS))
    section_id: Mapped[str | None] = mapped_column(sa.String(64))
    item_id: Mapped[str | None] = mapped_column(sa.String(64))
    signer: Mapped[str] = mapped_column(EMAIL, index=True)
    revision: Mapped[int]
    state: Mapped[str] = mapped_column(str_enum("signoff_request_state", *REQUEST_STATES))
    link_id: Mapped[int | None] = mapped_column(sa.ForeignKey("signoff_links.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    package_application: Mapped[PackageApplication] = relationship()


class Signoff(Base):
    """A recorded decision. Never updated except to mark it stale when its application changes."""

    __tablename__ = "signoffs"

    id: Mapped[int] = mapped_column(primary_key=True)
    package_id: Mapped[int] = mapped_column(sa.ForeignKey("packages.id"), index=True)
    package_application_id: Mapped[int] = mapped_column(sa.ForeignKey("package_applications.id"))
    request_id: Mapped[int | None] = mapped_column(sa.ForeignKey("signoff_requests.id"))
    kind: Mapped[str] = mapped_column(str_enum("signoff_kind", *SIGNOFF_KINDS))
    section_id: Mapped[str | None] = mapped_column(sa.String(64))
    item_id: Mapped[str | None] = mapped_column(sa.String(64))
    signer: Mapped[str] = mapped_column(EMAIL)
    decision: Mapped[str] = mapped_column(str_enum("signoff_decision", *DECISIONS))
    comment: Mapped[str] = mapped_column(sa.Text, default="")
    evidence: Mapped[str] = mapped_column(sa.Text, default="")
    scenarios_confirmed: Mapped[str] = mapped_column(sa.String(200), default="")
    revision: Mapped[int]
    signed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    stale_since_revision: Mapped[int | None]

    package_application: Mapped[PackageApplication] = relationship()


class ApiToken(Base):
    """A bearer token for the JSON API; only its sha256 is stored."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(64), unique=True)
    prefix: Mapped[str] = mapped_column(sa.String(16))
    token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    scopes: Mapped[str] = mapped_column(sa.String(200))
    owner: Mapped[str | None] = mapped_column(EMAIL)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


OUTBOX_STATES = ("queued", "sending", "sent", "dead")
LINK_STATES = ("active", "used", "superseded", "revoked")


class OutboxMessage(Base):
    """An email written in the transaction of the change that caused it; a worker sends it."""

    __tablename__ = "outbox"
    __table_args__ = (sa.Index("ix_outbox_state_next_attempt_at", "state", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    template: Mapped[str] = mapped_column(sa.String(64))
    to_address: Mapped[str] = mapped_column(EMAIL)
    subject: Mapped[str] = mapped_column(sa.String(300))
    body_text: Mapped[str] = mapped_column(sa.Text)
    body_html: Mapped[str] = mapped_column(sa.Text)
    state: Mapped[str] = mapped_column(str_enum("outbox_state", *OUTBOX_STATES))
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime())
    claimed_by: Mapped[str | None] = mapped_column(sa.String(64))
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_error: Mapped[str] = mapped_column(sa.Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class SignoffLink(Base):
    """One emailed link: a signer's pending requests in one package revision."""

    __tablename__ = "signoff_links"
    __table_args__ = (sa.Index("ix_signoff_links_package_state", "package_id", "state"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    package_id: Mapped[int] = mapped_column(sa.ForeignKey("packages.id"))
    signer: Mapped[str] = mapped_column(EMAIL, index=True)
    revision: Mapped[int]
    nonce_hash: Mapped[str] = mapped_column(sa.String(64))
    state: Mapped[str] = mapped_column(str_enum("signoff_link_state", *LINK_STATES))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    reminded_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    expiry_warned_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    escalated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    package: Mapped[Package] = relationship()
