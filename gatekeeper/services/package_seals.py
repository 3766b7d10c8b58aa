"""Package seals: a keyed MAC over which sign-offs and applications a package holds.

Record MACs (services/integrity) prove each sign-off genuine, not that every genuine one is
still there: deleting a `fail` sign-off by SQL, marking it stale or taking its application out
of the package would remove its blocker. The seal names every sign-off id with its staleness and
every application row with its revisions, under the record key, so any of those changes made
outside Gatekeeper no longer matches it and the gate says TAMPERING_DETECTED.

A legitimate change cannot launder an earlier tampering: every writer takes the package's lock
(services/packages.lock_package) before changing anything, and the seal is checked then; the
seal written when the transaction commits carries "tampered" for good when it did not match.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from gatekeeper.db.models import Package, PackageApplication, Signoff
from gatekeeper.services import integrity

KIND = "package_seal"
# session.info: package id -> whether its seal matched when this transaction locked it.
_WATCHED = "gatekeeper.package_seals"

Holding = dict[str, list[list[int | None]]]
# What a seal names of each row: (id, application id, changed in, removed in revision) of an
# application, (id, stale since revision) of a sign-off.
APPLICATION_COLUMNS = (
    PackageApplication.id,
    PackageApplication.application_id,
    PackageApplication.changed_in_revision,
    PackageApplication.removed_in_revision,
)
SIGNOFF_COLUMNS = (Signoff.id, Signoff.stale_since_revision)


def holding(
    applications: Iterable[Sequence[int | None]], signoffs: Iterable[Sequence[int | None]]
) -> Holding:
    """What a seal covers, in a canonical order."""
    return {
        "applications": sorted(list(a) for a in applications),
        "signoffs": sorted(list(s) for s in signoffs),
    }


def holding_of(applications: Iterable[PackageApplication], signoffs: Iterable[Signoff]) -> Holding:
    """`holding` of loaded rows."""
    return holding(
        ([getattr(a, c.key) for c in APPLICATION_COLUMNS] for a in applications),
        ([getattr(s, c.key) for c in SIGNOFF_COLUMNS] for s in signoffs),
    )


def _fields(package_id: int, held: Holding, *, tampered: bool) -> dict[str, Any]:
    return {"package_id": package_id, **held, "tampered": tampered}


def intact(records: integrity.RecordKeys, package: Package, held: Holding) -> bool:
    """The seal matches what the package holds, and no earlier tampering was sealed into it.
    A package without a seal (made before seals, and not sealed since) is not intact."""
    key_id, _, mac = (package.record_seal or "").partition(":")
    return records.verifies(KIND, _fields(package.id, held, tampered=False), key_id, mac)


def holds_sealed(
    session: Session, records: integrity.RecordKeys, package: Package, held: Holding
) -> bool:
    """`intact`, as the gate reads it: inside a transaction that is changing the package, its
    own changes are legitimate (the seal is rewritten when it commits), so what counts is
    whether the seal matched when the transaction took the lock."""
    watched: dict[int, bool] = session.info.get(_WATCHED, {})
    if package.id in watched:
        return watched[package.id]
    return intact(records, package, held)


def _held_now(session: Session, package_id: int) -> Holding:
    """What the package holds, read as columns: writers pay no ORM load for it."""
    return holding(
        session.execute(
            sa.select(*APPLICATION_COLUMNS).where(PackageApplication.package_id == package_id)
        ),
        session.execute(sa.select(*SIGNOFF_COLUMNS).where(Signoff.package_id == package_id)),
    )


def watch(session: Session, package_id: int, *, new: bool = False) -> None:
    """A writer holds the package's lock and has changed nothing yet: note whether the seal
    still matches, and reseal the package when the transaction commits."""
    watched: dict[int, bool] = session.info.setdefault(_WATCHED, {})
    if package_id in watched:
        return
    if new:
        watched[package_id] = True
        return
    package = session.get_one(Package, package_id)
    records = integrity.keyring_of(session).records
    watched[package_id] = intact(records, package, _held_now(session, package_id))


@sa.event.listens_for(Session, "before_commit")
def _reseal(session: Session) -> None:
    watched: dict[int, bool] = session.info.pop(_WATCHED, {})
    if not watched:
        return
    session.flush()
    records = integrity.keyring_of(session).records
    for package_id, was_intact in watched.items():
        fields = _fields(package_id, _held_now(session, package_id), tampered=not was_intact)
        key_id, mac = records.sign(KIND, fields)
        session.execute(
            sa.update(Package)
            .where(Package.id == package_id)
            .values(record_seal=f"{key_id}:{mac}")
            .execution_options(synchronize_session=False)
        )


@sa.event.listens_for(Session, "after_rollback")
def _forget(session: Session) -> None:
    session.info.pop(_WATCHED, None)
