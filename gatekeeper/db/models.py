"""Database tables as typed SQLAlchemy 2.0 models."""

from __future__ import annotations

from datetime import datetime

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
