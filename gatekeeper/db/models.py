"""Database tables as typed SQLAlchemy 2.0 models."""

from __future__ import annotations

from datetime import date, datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from gatekeeper.db.base import Base, UTCDateTime, str_enum
from gatekeeper.domain.finding import finding_ref
from gatekeeper.domain.proposal import PROPOSAL_STATES, proposal_ref

# Re-exported: the role names are the domain's; services and tests take them from here too.
from gatekeeper.domain.roles import ROLES as ROLES

EMAIL = sa.String(254)

VERSION_STATES = ("pending_review", "approved", "changes_requested", "superseded")
REVIEW_OUTCOMES = ("approved", "changes_requested", "reaffirmed", "partially_approved")


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
    # Who to name as the version's author: the one given to sync, else the newest commit's.
    author: Mapped[str | None] = mapped_column(EMAIL)
    # Everyone who wrote the change: every author and committer of every commit that touched
    # the file since the last approved version, and the author given to sync. Sorted.
    authors: Mapped[list[str]] = mapped_column(sa.JSON, default=list)
    # Why part of the change has no known author (None: every author is known); such a
    # version needs two reviewers' approvals.
    authorship_unknown: Mapped[str | None] = mapped_column(sa.Text)
    state: Mapped[str] = mapped_column(str_enum("checklist_version_state", *VERSION_STATES))
    synced_at: Mapped[datetime] = mapped_column(UTCDateTime())
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    application: Mapped[Application] = relationship(back_populates="versions")
    reviews: Mapped[list[GovernanceReview]] = relationship(
        back_populates="checklist_version", order_by="GovernanceReview.reviewed_at"
    )


class FreezeCalendarVersion(Base):
    """One immutable version of the freeze calendar file (`checklists/freezes.yaml`): synced,
    reviewed and approved like a checklist version; the gate reads the newest approved one."""

    __tablename__ = "freeze_calendar_versions"

    id: Mapped[int] = mapped_column(primary_key=True)
    version: Mapped[int] = mapped_column(unique=True)
    sha256: Mapped[str] = mapped_column(sa.String(64))
    content: Mapped[str] = mapped_column(sa.Text)
    source_yaml: Mapped[str] = mapped_column(sa.Text)
    source_path: Mapped[str] = mapped_column(sa.String(500))
    author: Mapped[str | None] = mapped_column(EMAIL)
    state: Mapped[str] = mapped_column(str_enum("freeze_calendar_state", *VERSION_STATES))
    synced_at: Mapped[datetime] = mapped_column(UTCDateTime())
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    reviewed_by: Mapped[str | None] = mapped_column(EMAIL)
    review_notes: Mapped[str] = mapped_column(sa.Text, default="")


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
    # HMAC-SHA256 over the record's canonical fields (services/integrity) with a record key
    # kept outside the database, and which key; None only on rows older than record MACs.
    mac: Mapped[str | None] = mapped_column(sa.String(64))
    mac_key_id: Mapped[str | None] = mapped_column(sa.String(16))

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
    # The gate as evaluated when the package was released (JSON), for the evidence pack.
    release_gate: Mapped[str | None] = mapped_column(sa.Text)
    # "key id:HMAC" over which sign-offs and applications the package holds (services/integrity
    # package seals): a row deleted, added or marked stale by SQL no longer matches it.
    record_seal: Mapped[str | None] = mapped_column(sa.String(100))

    applications: Mapped[list[PackageApplication]] = relationship(
        back_populates="package", order_by="PackageApplication.id"
    )
    revisions: Mapped[list[PackageRevision]] = relationship(
        back_populates="package", order_by="PackageRevision.revision"
    )
    emergency: Mapped[Emergency | None] = relationship(back_populates="package")


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
    """What changed at each revision of a submitted package, and what carried forward; also
    edits of fields nobody signs (title, planned date), listed at the revision they happened in
    (`signed` false: no new revision)."""

    __tablename__ = "package_revisions"
    __table_args__ = (
        sa.Index(
            "uq_package_revisions_signed_revision",
            "package_id",
            "revision",
            unique=True,
            sqlite_where=sa.text("signed"),
            postgresql_where=sa.text("signed"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    package_id: Mapped[int] = mapped_column(sa.ForeignKey("packages.id"), index=True)
    revision: Mapped[int]
    signed: Mapped[bool] = mapped_column(default=True)
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
    # A deputy's request: the away person whose place the deputy takes.
    on_behalf_of: Mapped[str | None] = mapped_column(EMAIL)
    # When this request (revoked) was handed to the deputies of its away signer.
    handed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

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
    # Set when a deputy signed: the away person the sign-off was given for.
    on_behalf_of: Mapped[str | None] = mapped_column(EMAIL)
    # HMAC-SHA256 over the record's canonical fields (services/integrity) with a record key
    # kept outside the database, and which key; None only on rows older than record MACs.
    mac: Mapped[str | None] = mapped_column(sa.String(64))
    mac_key_id: Mapped[str | None] = mapped_column(sa.String(16))

    package_application: Mapped[PackageApplication] = relationship()


GATE_STATUSES = ("open", "pending", "blocked")


class Deployment(Base):
    """A deployment CI reported, stored with the gate as evaluated at that moment."""

    __tablename__ = "deployments"

    id: Mapped[int] = mapped_column(primary_key=True)
    package_id: Mapped[int] = mapped_column(sa.ForeignKey("packages.id"), index=True)
    environment: Mapped[str] = mapped_column(sa.String(64))
    applications: Mapped[str] = mapped_column(sa.Text)  # JSON: [{application, version, sha}]
    pipeline_url: Mapped[str] = mapped_column(sa.String(2000))
    reported_by: Mapped[str] = mapped_column(sa.String(254))
    reported_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    package_state: Mapped[str] = mapped_column(
        str_enum("deployment_package_state", *PACKAGE_STATES)
    )
    package_revision: Mapped[int]
    gate_status: Mapped[str] = mapped_column(str_enum("deployment_gate_status", *GATE_STATUSES))
    gate_digest: Mapped[str] = mapped_column(sa.String(80))
    gate: Mapped[str] = mapped_column(sa.Text)  # JSON: the whole gate answer

    package: Mapped[Package] = relationship()


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


OUTBOX_STATES = ("queued", "sending", "sent", "dead", "moot")
# The emailed link an outbox row carries: a row whose link can no longer be used is moot.
OUTBOX_LINK_KINDS = ("signoff", "review", "sign_in", "triage", "confirmation")
# What an outbox row carries: an email for the SMTP worker, one webhook event for one
# subscription, posted by the webhook deliverer, or one call to a CI platform (a status report
# or a decision on a waiting deployment), posted by notify/platforms.
OUTBOX_KINDS = ("email", "webhook", "platform_call")
PLATFORMS = ("github", "gitlab", "azure_devops")
PLATFORM_DEPLOYMENT_STATES = ("waiting", "approved", "rejected")
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
    # For a dead row, the last error; for a moot one, why it was not sent.
    last_error: Mapped[str] = mapped_column(sa.Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    link_kind: Mapped[str | None] = mapped_column(str_enum("outbox_link_kind", *OUTBOX_LINK_KINDS))
    link_id: Mapped[int | None]
    # A webhook row keeps the mail columns readable in the outbox views: template is the event
    # type, to_address the subscription's URL (shortened), subject a one-line summary and
    # body_text the exact JSON body that is signed and posted.
    kind: Mapped[str] = mapped_column(
        str_enum("outbox_kind", *OUTBOX_KINDS), default="email", server_default="email"
    )
    subscription_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("webhook_subscriptions.id", ondelete="CASCADE"), index=True
    )
    # The Standard Webhooks `webhook-id`: one per event and subscription, the same on every
    # retry, so a receiver can drop a duplicate.
    webhook_id: Mapped[str | None] = mapped_column(sa.String(64))


class PlatformDeployment(Base):
    """A CI platform's deployment waiting on the gate, and the one decision Gatekeeper posts.

    The state moves from `waiting` once, by a conditional update: whichever worker or request
    wins it queues the decision, so two workers never decide the same deployment twice."""

    __tablename__ = "platform_deployments"
    __table_args__ = (sa.UniqueConstraint("platform", "external_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    platform: Mapped[str] = mapped_column(str_enum("platform", *PLATFORMS))
    # GitHub: the run's callback URL; GitLab: project and deployment id; Azure DevOps: the
    # plan and task instance. Unique per platform: a redelivered request is the same wait.
    external_id: Mapped[str] = mapped_column(sa.String(500))
    project: Mapped[str] = mapped_column(sa.String(255))
    environment: Mapped[str] = mapped_column(sa.String(255))
    ref: Mapped[str] = mapped_column(sa.String(255), default="")
    sha: Mapped[str] = mapped_column(sa.String(64), default="")
    package_id: Mapped[int | None] = mapped_column(sa.ForeignKey("packages.id"), index=True)
    # Where and how to answer (JSON), sealed: it may hold a platform's job token.
    callback_sealed: Mapped[str] = mapped_column(sa.Text)
    state: Mapped[str] = mapped_column(
        str_enum("platform_deployment_state", *PLATFORM_DEPLOYMENT_STATES), index=True
    )
    reports: Mapped[int] = mapped_column(default=0)
    last_report: Mapped[str] = mapped_column(sa.Text, default="")
    comment: Mapped[str] = mapped_column(sa.Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class PlatformPoll(Base):
    """When the worker next looks for deployments a platform holds without telling anyone
    (GitLab's blocked deployments). Taken by a conditional update: one worker polls at a time;
    a platform's webhook moves it to now."""

    __tablename__ = "platform_polls"

    platform: Mapped[str] = mapped_column(str_enum("platform", *PLATFORMS), primary_key=True)
    next_poll_at: Mapped[datetime] = mapped_column(UTCDateTime())


class WebhookSubscription(Base):
    """Where to post which events. The signing secret is stored encrypted (see notify/webhooks)."""

    __tablename__ = "webhook_subscriptions"

    id: Mapped[int] = mapped_column(primary_key=True)
    url: Mapped[str] = mapped_column(sa.String(2000))
    events: Mapped[list[str]] = mapped_column(sa.JSON, default=list)
    secret_sealed: Mapped[str] = mapped_column(sa.Text)
    created_by: Mapped[str] = mapped_column(EMAIL)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    rotated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class WebhookDelivery(Base):
    """One attempt to post one webhook: the subscription's delivery log."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (sa.Index("ix_webhook_deliveries_subscription_at", "subscription_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    subscription_id: Mapped[int] = mapped_column(
        sa.ForeignKey("webhook_subscriptions.id", ondelete="CASCADE")
    )
    outbox_id: Mapped[int]
    webhook_id: Mapped[str] = mapped_column(sa.String(64))
    event: Mapped[str] = mapped_column(sa.String(64))
    attempted_at: Mapped[datetime] = mapped_column(UTCDateTime())
    status_code: Mapped[int | None]
    error: Mapped[str] = mapped_column(sa.Text, default="")
    duration_ms: Mapped[int]


class WorkerHeartbeat(Base):
    """The last pass of each `gatekeeper worker` process, in the database every host shares:
    `gatekeeper worker --healthcheck` reads it on any host, however the workers are spread."""

    __tablename__ = "worker_heartbeats"

    worker_id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    host: Mapped[str] = mapped_column(sa.String(64), index=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    beat_at: Mapped[datetime] = mapped_column(UTCDateTime())


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
    # When an open of this link was last written to the audit trail (at most once an hour).
    open_recorded_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # When the link died because its signer is away and their requests went to deputies.
    handed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    package: Mapped[Package] = relationship()


class Absence(Base):
    """A person away from `starts_at` until `ends_at`: their deputies sign in their place."""

    __tablename__ = "absences"
    __table_args__ = (sa.CheckConstraint("ends_at >= starts_at", name="ends_after_start"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    person: Mapped[str] = mapped_column(EMAIL, index=True)
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # Ending an absence early moves this to the moment of return (never before starts_at).
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    note: Mapped[str] = mapped_column(sa.Text, default="")
    recorded_by: Mapped[str] = mapped_column(sa.String(254))
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime())


class AuditEvent(Base):
    """One link of the hash-chained audit log; the database refuses UPDATE and DELETE on it."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    seq: Mapped[int] = mapped_column(unique=True)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime())
    actor: Mapped[str] = mapped_column(sa.String(254))
    action: Mapped[str] = mapped_column(sa.String(64))
    subject: Mapped[str] = mapped_column(sa.String(300))
    package: Mapped[str | None] = mapped_column(sa.String(64), index=True)
    revision: Mapped[int | None]
    client_address: Mapped[str | None] = mapped_column(sa.String(64))
    user_agent: Mapped[str | None] = mapped_column(sa.String(300))
    details: Mapped[str] = mapped_column(sa.Text)
    prev_hash: Mapped[str] = mapped_column(sa.String(64))
    hash: Mapped[str] = mapped_column(sa.String(64))
    # Ed25519 over the hash with the audit signing key, and which key; None only on events
    # older than audit signing (accepted only before the first signed event).
    signature: Mapped[str | None] = mapped_column(sa.String(100))
    key_id: Mapped[str | None] = mapped_column(sa.String(16))


SIGN_IN_LINK_STATES = ("active", "used", "superseded")


class User(Base):
    """A staff account (release manager, governance reviewer, admin); signers need none."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(EMAIL, unique=True)
    name: Mapped[str] = mapped_column(sa.String(200))
    # None: single sign-on maps none of the person's groups to a role, so they get no access.
    role: Mapped[str | None] = mapped_column(str_enum("user_role", *ROLES))
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    deactivated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Part of the session identity: bumping it signs the user out everywhere.
    session_version: Mapped[int] = mapped_column(default=1)


class CalendarKey(Base):
    """A person's secret calendar feed URL key; only its sha256 is stored."""

    __tablename__ = "calendar_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    owner: Mapped[str] = mapped_column(EMAIL, index=True)
    key_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class SignInLink(Base):
    """One emailed sign-in link: short-lived, single use; only the nonce's hash is stored."""

    __tablename__ = "sign_in_links"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"), index=True)
    nonce_hash: Mapped[str] = mapped_column(sa.String(64))
    state: Mapped[str] = mapped_column(str_enum("sign_in_link_state", *SIGN_IN_LINK_STATES))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class SsoAttempt(Base):
    """One single sign-on round trip begun here; the callback may finish it once, and soon.

    Only the state's hash is kept: the state itself travels in the browser's signed session
    and in the provider's redirect.
    """

    __tablename__ = "sso_attempts"

    id: Mapped[int] = mapped_column(primary_key=True)
    state_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


REVIEW_LINK_REASONS = ("new_version", "review_due", "review_overdue")
REVIEW_REMINDER_KINDS = ("ahead", "overdue")
FINDING_STATES = ("open", "accepted", "addressed", "declined")
FINDING_CLASSIFICATIONS = ("escaped_past", "uncovered", "not_a_checklist_matter")
REPORT_LINK_STATES = ("active", "used")


class ReviewLink(Base):
    """One emailed governance-review link: a reviewer asked to review one checklist version."""

    __tablename__ = "review_links"
    __table_args__ = (sa.Index("ix_review_links_version_state", "checklist_version_id", "state"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    checklist_version_id: Mapped[int] = mapped_column(sa.ForeignKey("checklist_versions.id"))
    reviewer: Mapped[str] = mapped_column(EMAIL, index=True)
    reason: Mapped[str] = mapped_column(str_enum("review_link_reason", *REVIEW_LINK_REASONS))
    # For scheduled reviews: the due date the link was sent for.
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    nonce_hash: Mapped[str] = mapped_column(sa.String(64))
    state: Mapped[str] = mapped_column(str_enum("review_link_state", *LINK_STATES))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    checklist_version: Mapped[ChecklistVersion] = relationship()


class ReviewReminder(Base):
    """A scheduled-review reminder sent: at most one of each kind per application and due date
    (the unique constraint is the claim, so several workers never send it twice)."""

    __tablename__ = "review_reminders"
    __table_args__ = (sa.UniqueConstraint("application_id", "due_at", "kind"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    application_id: Mapped[int] = mapped_column(sa.ForeignKey("applications.id"))
    due_at: Mapped[datetime] = mapped_column(UTCDateTime())
    kind: Mapped[str] = mapped_column(str_enum("review_reminder_kind", *REVIEW_REMINDER_KINDS))
    sent_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ReportLink(Base):
    """The "report a problem found after release" link of one recipient of one released package."""

    __tablename__ = "report_links"
    __table_args__ = (sa.UniqueConstraint("package_id", "recipient"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    package_id: Mapped[int] = mapped_column(sa.ForeignKey("packages.id"))
    recipient: Mapped[str] = mapped_column(EMAIL)
    nonce_hash: Mapped[str] = mapped_column(sa.String(64))
    state: Mapped[str] = mapped_column(str_enum("report_link_state", *REPORT_LINK_STATES))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    package: Mapped[Package] = relationship()


class Finding(Base):
    """A problem found after a release, filed against the application's checklist."""

    __tablename__ = "findings"
    __table_args__ = (sa.Index("ix_findings_application_state", "application_id", "state"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    application_id: Mapped[int] = mapped_column(sa.ForeignKey("applications.id"))
    package_id: Mapped[int | None] = mapped_column(sa.ForeignKey("packages.id"))
    # The checklist version the release was gated with, when the application had one.
    checklist_version_id: Mapped[int | None] = mapped_column(sa.ForeignKey("checklist_versions.id"))
    report_link_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("report_links.id"), unique=True
    )
    reported_by: Mapped[str | None] = mapped_column(EMAIL)
    what_happened: Mapped[str] = mapped_column(sa.Text)
    impact: Mapped[str] = mapped_column(sa.Text)
    # low | medium | high; None for reports filed before levels were asked.
    impact_level: Mapped[str | None] = mapped_column(sa.String(16))
    could_have_caught: Mapped[str] = mapped_column(sa.Text)
    state: Mapped[str] = mapped_column(str_enum("finding_state", *FINDING_STATES))
    reported_at: Mapped[datetime] = mapped_column(UTCDateTime())
    triaged_by: Mapped[str | None] = mapped_column(EMAIL)
    triaged_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    rationale: Mapped[str] = mapped_column(sa.Text, default="")
    # The triage's class (None: untriaged, or accepted before classes existed); an escape
    # names the item of `checklist_version` that should have caught it.
    classification: Mapped[str | None] = mapped_column(
        str_enum("finding_classification", *FINDING_CLASSIFICATIONS)
    )
    escaped_section_id: Mapped[str | None] = mapped_column(sa.String(64))
    escaped_item_id: Mapped[str | None] = mapped_column(sa.String(64))
    addressed_by_version_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("checklist_versions.id")
    )
    addressed_by: Mapped[str | None] = mapped_column(EMAIL)
    addressed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    application: Mapped[Application] = relationship()
    package: Mapped[Package | None] = relationship()
    checklist_version: Mapped[ChecklistVersion | None] = relationship(
        foreign_keys=[checklist_version_id]
    )
    addressed_by_version: Mapped[ChecklistVersion | None] = relationship(
        foreign_keys=[addressed_by_version_id]
    )

    @property
    def ref(self) -> str:
        return finding_ref(self.id)


class TriageLink(Base):
    """One emailed triage link: a reviewer of a finding's checklist asked to triage it."""

    __tablename__ = "triage_links"
    __table_args__ = (sa.Index("ix_triage_links_finding_state", "finding_id", "state"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    finding_id: Mapped[int] = mapped_column(sa.ForeignKey("findings.id"))
    reviewer: Mapped[str] = mapped_column(EMAIL, index=True)
    nonce_hash: Mapped[str] = mapped_column(sa.String(64))
    state: Mapped[str] = mapped_column(str_enum("triage_link_state", *LINK_STATES))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    finding: Mapped[Finding] = relationship()


CONFIRMATION_ANSWERS = ("works", "problem")


class ConfirmationLink(Base):
    """One emailed "still working after go-live?" link: a key user of one released application
    asked once the release has run a while. A reminder replaces it with a new link."""

    __tablename__ = "confirmation_links"
    __table_args__ = (
        sa.Index("ix_confirmation_links_package_application", "package_id", "application_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    package_id: Mapped[int] = mapped_column(sa.ForeignKey("packages.id"))
    application_id: Mapped[int] = mapped_column(sa.ForeignKey("applications.id"))
    key_user: Mapped[str] = mapped_column(EMAIL)
    nonce_hash: Mapped[str] = mapped_column(sa.String(64))
    state: Mapped[str] = mapped_column(str_enum("confirmation_link_state", *LINK_STATES))
    reminder: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    answer: Mapped[str | None] = mapped_column(
        str_enum("confirmation_answer", *CONFIRMATION_ANSWERS)
    )
    finding_id: Mapped[int | None] = mapped_column(sa.ForeignKey("findings.id"))

    package: Mapped[Package] = relationship()
    application: Mapped[Application] = relationship()


LEARNING_REVIEW_STATES = ("open", "completed")
ACTION_ITEM_STATES = ("open", "done", "dropped")
ACTION_ITEM_KINDS = ("checklist_change", "process", "tooling")

learning_review_findings = sa.Table(
    "learning_review_findings",
    Base.metadata,
    sa.Column("review_id", sa.ForeignKey("learning_reviews.id"), primary_key=True),
    sa.Column("finding_id", sa.ForeignKey("findings.id"), primary_key=True),
)


class LearningReview(Base):
    """A blameless review of what went wrong after a release, due soon after its trigger."""

    __tablename__ = "learning_reviews"
    __table_args__ = (sa.Index("ix_learning_reviews_application_state", "application_id", "state"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    package_id: Mapped[int] = mapped_column(sa.ForeignKey("packages.id"), index=True)
    application_id: Mapped[int] = mapped_column(sa.ForeignKey("applications.id"))
    trigger: Mapped[str] = mapped_column(sa.String(200))
    opened_by: Mapped[str] = mapped_column(sa.String(254))
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime())
    due_at: Mapped[datetime] = mapped_column(UTCDateTime())
    state: Mapped[str] = mapped_column(str_enum("learning_review_state", *LEARNING_REVIEW_STATES))
    statement: Mapped[str] = mapped_column(sa.Text, default="")
    factors: Mapped[str] = mapped_column(sa.Text, default="")
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Set once, by the worker that claims sending the reminder before the review is due.
    reminded_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    package: Mapped[Package] = relationship()
    application: Mapped[Application] = relationship()
    findings: Mapped[list[Finding]] = relationship(
        secondary=learning_review_findings, order_by="Finding.id"
    )
    entries: Mapped[list[TimelineEntry]] = relationship(order_by="TimelineEntry.occurred_at")
    action_items: Mapped[list[ActionItem]] = relationship(
        back_populates="review", order_by="ActionItem.id"
    )


class TimelineEntry(Base):
    """A moment a person added to a learning review's timeline (the audit chain gives the rest)."""

    __tablename__ = "learning_timeline_entries"

    id: Mapped[int] = mapped_column(primary_key=True)
    review_id: Mapped[int] = mapped_column(sa.ForeignKey("learning_reviews.id"), index=True)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime())
    text: Mapped[str] = mapped_column(sa.Text)
    added_by: Mapped[str] = mapped_column(sa.String(254))


class ActionItem(Base):
    """A fix a learning review gives a team to own, by a date."""

    __tablename__ = "action_items"
    __table_args__ = (sa.Index("ix_action_items_state_due_at", "state", "due_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    review_id: Mapped[int] = mapped_column(sa.ForeignKey("learning_reviews.id"), index=True)
    title: Mapped[str] = mapped_column(sa.String(200))
    owner: Mapped[str] = mapped_column(EMAIL)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime())
    kind: Mapped[str] = mapped_column(str_enum("action_item_kind", *ACTION_ITEM_KINDS))
    state: Mapped[str] = mapped_column(str_enum("action_item_state", *ACTION_ITEM_STATES))
    # For a checklist change: the findings an approved version must address to finish it.
    finding_ids: Mapped[list[int]] = mapped_column(sa.JSON, default=list)
    rationale: Mapped[str] = mapped_column(sa.Text, default="")
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    closed_by: Mapped[str | None] = mapped_column(sa.String(254))
    # Set once, by the worker that claims reminding the owners before the due date.
    reminded_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    review: Mapped[LearningReview] = relationship(back_populates="action_items")


class Emergency(Base):
    """An emergency declared on a package: why, by whom, and after release its
    post-implementation review (who is still waited on, when it is due, when it was done)."""

    __tablename__ = "emergencies"

    id: Mapped[int] = mapped_column(primary_key=True)
    package_id: Mapped[int] = mapped_column(sa.ForeignKey("packages.id"), unique=True)
    reason: Mapped[str] = mapped_column(sa.Text)
    declared_by: Mapped[str] = mapped_column(EMAIL)
    declared_at: Mapped[datetime] = mapped_column(UTCDateTime())
    review_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), index=True)
    # Sorted emails; kept up to date with each review sign-off, so other packages' gates read
    # who is waited on without evaluating this package.
    review_waiting_on: Mapped[list[str]] = mapped_column(sa.JSON, default=list)
    review_completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    package: Mapped[Package] = relationship(back_populates="emergency")
    approvals: Mapped[list[EmergencyApproval]] = relationship(
        back_populates="emergency", order_by="EmergencyApproval.id"
    )


class EmergencyApproval(Base):
    """One approver's authorisation of an emergency; an approver counts once."""

    __tablename__ = "emergency_approvals"
    __table_args__ = (sa.UniqueConstraint("emergency_id", "approver"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    emergency_id: Mapped[int] = mapped_column(sa.ForeignKey("emergencies.id"))
    approver: Mapped[str] = mapped_column(EMAIL)
    approved_at: Mapped[datetime] = mapped_column(UTCDateTime())

    emergency: Mapped[Emergency] = relationship(back_populates="approvals")


class EmergencyLink(Base):
    """One emailed link asking an approver to authorise an emergency release."""

    __tablename__ = "emergency_links"
    __table_args__ = (sa.Index("ix_emergency_links_emergency_state", "emergency_id", "state"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    emergency_id: Mapped[int] = mapped_column(sa.ForeignKey("emergencies.id"))
    approver: Mapped[str] = mapped_column(EMAIL)
    nonce_hash: Mapped[str] = mapped_column(sa.String(64))
    state: Mapped[str] = mapped_column(str_enum("emergency_link_state", *LINK_STATES))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    emergency: Mapped[Emergency] = relationship()


PROPOSAL_SOURCES = ("signoff", "confirmation")


class ScenarioProposal(Base):
    """A scenario a key user relies on that the checklist does not list, proposed from one of
    their emailed links (which stays usable for its own answer)."""

    __tablename__ = "scenario_proposals"
    __table_args__ = (
        sa.Index("ix_scenario_proposals_application_state", "application_id", "state"),
        sa.Index("ix_scenario_proposals_source_link", "source", "link_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    application_id: Mapped[int] = mapped_column(sa.ForeignKey("applications.id"))
    # The checklist version the proposer was shown, when the release was gated with one.
    checklist_version_id: Mapped[int | None] = mapped_column(sa.ForeignKey("checklist_versions.id"))
    # Which kind of link it came from, and that link's id (sign-off or confirmation link).
    source: Mapped[str] = mapped_column(str_enum("proposal_source", *PROPOSAL_SOURCES))
    link_id: Mapped[int]
    proposed_by: Mapped[str] = mapped_column(EMAIL)
    scenario: Mapped[str] = mapped_column(sa.Text)
    notes: Mapped[str] = mapped_column(sa.Text, default="")
    state: Mapped[str] = mapped_column(str_enum("proposal_state", *PROPOSAL_STATES))
    proposed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    decided_by: Mapped[str | None] = mapped_column(EMAIL)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    rationale: Mapped[str] = mapped_column(sa.Text, default="")
    adopted_by_version_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("checklist_versions.id")
    )

    application: Mapped[Application] = relationship()
    checklist_version: Mapped[ChecklistVersion | None] = relationship(
        foreign_keys=[checklist_version_id]
    )
    adopted_by_version: Mapped[ChecklistVersion | None] = relationship(
        foreign_keys=[adopted_by_version_id]
    )

    @property
    def ref(self) -> str:
        return proposal_ref(self.id)
