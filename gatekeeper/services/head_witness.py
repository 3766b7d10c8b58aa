"""The newest audit head this host has seen, so that a database put back to an older state is
noticed instead of believed.

Record MACs and package seals refuse rows that were never genuine. A restored backup (or a
superuser's rewrite of the chain's end) holds rows that *were* genuine then: a package before
its failed sign-off was recorded verifies in every MAC and every seal. What it cannot hide is
that the append-only audit chain is now shorter than it was, or holds another event where one
was seen. So every process keeps the highest committed head it has read, on disk as well as in
memory (the file lives on the application host, out of reach of someone who holds only the
database), and while the chain does not continue from it every gate answers
TAMPERING_DETECTED. An operator who restored on purpose says so with `gatekeeper audit
accept-restore`, which is audited and moves the witness to the restored chain.

A head that looks older may also be an older read snapshot of a healthy database (another
thread of this process may have read a newer one since), so a head behind the witness is
checked again on a connection of its own before anything is said.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import tempfile
import threading
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from weakref import WeakKeyDictionary

import sqlalchemy as sa
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from gatekeeper.db.models import AuditEvent
from gatekeeper.domain.audit import GENESIS
from gatekeeper.services import audit

log = logging.getLogger(__name__)

Head = tuple[int, str]


@dataclass(frozen=True)
class Witnessed:
    """A head seen, with the hash of the chain's first event: which database it was seen in."""

    seq: int
    hash: str
    origin: str

    @property
    def head(self) -> Head:
        return (self.seq, self.hash)


class HeadWitness:
    def __init__(self, path: Path | None, database: str, *, adopt_other_databases: bool) -> None:
        self._path = path
        # One file may witness several databases (a developer pointing one instance folder at
        # SQLite, then at PostgreSQL): each has its own entry, named without its password.
        self._database = entry_name(database)
        # Development only: a developer who deletes the SQLite file starts a new chain at the
        # same address, and its first event is another. Production reports that too.
        self._adopt_other_databases = adopt_other_databases
        self._lock = threading.Lock()
        self._seen = self._read()
        self._warned: set[Head] = set()

    @property
    def seen(self) -> Witnessed | None:
        return self._seen

    def vouches_for(self, head: Head) -> bool:
        """Whether `head` is the one witnessed: no query needed to trust it."""
        seen = self._seen
        return seen is not None and seen.head == head

    def observe(self, connection: sa.Connection) -> tuple[Head, str | None]:
        """The head of a committed read, witnessed when the chain continues to it, and what is
        wrong with the chain (None: nothing)."""
        head, probe, broken = self._inspect(connection)
        seen = self._seen
        if broken is None and head[0] > (seen.seq if seen is not None else 0):
            # With nothing witnessed yet, the probe was the chain's first event.
            self._witness(Witnessed(*head, seen.origin if seen is not None else probe))
        return head, broken

    def inspect(self, connection: sa.Connection) -> tuple[Head, str | None]:
        """The head this transaction reads and what is wrong with the chain; a write
        transaction's head may name its own uncommitted events, and is checked alike."""
        head, _probe, broken = self._inspect(connection)
        return head, broken

    def _inspect(self, connection: sa.Connection) -> tuple[Head, str, str | None]:
        seen = self._seen
        head, probe = _head_and_probe(connection, seen.seq if seen is not None else None)
        if seen is None or seen.head == head:
            return head, probe, None
        broken = _broken(seen, head, probe)
        if broken is not None and head[0] < seen.seq:
            broken = self._confirmed(connection.engine, seen)
        if broken is not None:
            broken = self._still_broken(connection, head, broken)
        return head, probe, broken

    def _still_broken(self, connection: sa.Connection, head: Head, broken: str) -> str | None:
        """A break, unless development started a new database or an operator accepted it."""
        seen = self._seen
        if seen is not None and self._another_database(connection, seen):
            log.warning(
                "audit witness: the database holds another audit chain than the one witnessed "
                "(event %s); starting over from it, as development does",
                seen.seq,
            )
            self.reset(connection.engine)
            return None
        if self._accepted_since(connection, head):
            return None
        if head not in self._warned:
            self._warned.add(head)
            log.critical("audit chain %s; no gate opens until an operator looks", broken)
        return broken

    def _another_database(self, connection: sa.Connection, seen: Witnessed) -> bool:
        """Development only (the query is not even made in production)."""
        return self._adopt_other_databases and _head_and_probe(connection, None)[1] != seen.origin

    def _accepted_since(self, connection: sa.Connection, head: Head) -> bool:
        """Whether `audit accept-restore` (another process of this host) moved the witness file
        to a chain that `head` continues; if so, this process witnesses that too."""
        reread = self._reread()
        if reread is None or reread == self._seen:
            return False
        if _broken(reread, head, _head_and_probe(connection, reread.seq)[1]) is not None:
            return False
        self._seen = reread
        return True

    def _confirmed(self, engine: Engine, seen: Witnessed) -> str | None:
        """Read the head again outside this (possibly older) snapshot."""
        with engine.connect() as fresh:
            return _broken(seen, *_head_and_probe(fresh, seen.seq))

    def reset(self, engine: Engine) -> Witnessed | None:
        """Witness the chain as it is committed now (the restore was meant); None for an empty
        chain."""
        with engine.connect() as connection:
            head, first = _head_and_probe(connection, None)
        found = Witnessed(*head, first) if head[0] else None
        with self._lock:
            self._seen = found
            self._warned.clear()
        self._write(found, force=True)
        return found

    def _witness(self, seen: Witnessed) -> None:
        with self._lock:
            current = self._seen
            if current is not None and current.seq >= seen.seq:
                return
            self._seen = seen
        self._write(seen, force=False)

    def _read(self) -> Witnessed | None:
        found = self._entries().get(self._database)
        if found is None:
            return None
        try:
            seq = found["seq"]
            if not isinstance(seq, int):
                raise TypeError("seq is not a number")
            return Witnessed(seq, str(found["hash"]), str(found["origin"]))
        except (KeyError, TypeError) as error:
            raise WitnessFileError(f"{self._path}: not an audit witness file ({error})") from None

    def _entries(self) -> dict[str, dict[str, object]]:
        if self._path is None:
            return {}
        try:
            found = json.loads(self._path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as error:
            # Unreadable is not "nothing seen": refuse to start rather than forget.
            raise WitnessFileError(f"{self._path}: not an audit witness file ({error})") from None
        if not isinstance(found, dict) or not all(isinstance(v, dict) for v in found.values()):
            raise WitnessFileError(f"{self._path}: not an audit witness file")
        return found

    def _reread(self) -> Witnessed | None:
        try:
            return self._read()
        except WitnessFileError as error:
            log.warning("audit witness: %s", error)
            return None

    def _write(self, seen: Witnessed | None, *, force: bool) -> None:
        """Replace the file atomically. Other processes of this host share it: a lower head
        never overwrites a higher one of the same chain unless an operator reset it."""
        if self._path is None:
            return
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            with open(self._path.with_name(self._path.name + ".lock"), "a") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                entries = self._entries()
                on_disk = entries.get(self._database)
                if seen is None:
                    entries.pop(self._database, None)
                elif force or not _ahead(on_disk, seen):
                    entries[self._database] = {
                        "seq": seen.seq,
                        "hash": seen.hash,
                        "origin": seen.origin,
                    }
                else:
                    return
                handle, temporary = tempfile.mkstemp(dir=self._path.parent, prefix=".witness-")
                with os.fdopen(handle, "w", encoding="utf-8") as out:
                    json.dump(entries, out, sort_keys=True)
                os.replace(temporary, self._path)
        except (OSError, WitnessFileError) as error:
            # Memory still witnesses for as long as the process runs.
            log.warning("audit witness: cannot write %s: %s", self._path, error)


def entry_name(database: str) -> str:
    """The file's entry for a database address (without its password)."""
    return hashlib.sha256(database.encode()).hexdigest()[:16]


def _ahead(on_disk: dict[str, object] | None, seen: Witnessed) -> bool:
    """Whether the file already holds this chain at `seen` or further."""
    if on_disk is None or on_disk.get("origin") != seen.origin:
        return False
    seq = on_disk.get("seq")
    return isinstance(seq, int) and seq >= seen.seq


class WitnessFileError(Exception):
    pass


def _broken(seen: Witnessed, head: Head, at_seen: str) -> str | None:
    """`at_seen`: the hash the chain now holds at the witnessed sequence number ("": none)."""
    if head[0] < seen.seq:
        return f"went back from event {seen.seq} to event {head[0]}"
    if at_seen != seen.hash:
        return f"holds another event {seen.seq} than the one witnessed"
    return None


_MAX_SEQ = sa.select(sa.func.max(AuditEvent.seq)).scalar_subquery()
_MIN_SEQ = sa.select(sa.func.min(AuditEvent.seq)).scalar_subquery()
# One statement: the head and the event at the witnessed number (or the first event, while
# nothing is witnessed). Built once, like audit's own head query, for the hot path.
_HEAD_AND_PROBE = sa.select(AuditEvent.seq, AuditEvent.hash).where(
    AuditEvent.seq.in_(
        [_MAX_SEQ, sa.func.coalesce(sa.bindparam("probe", type_=sa.Integer), _MIN_SEQ)]
    )
)


def _head_and_probe(connection: sa.Connection, probe: int | None) -> tuple[Head, str]:
    """The head ((0, GENESIS) for an empty chain) and the hash at `probe`, or at the first
    event when `probe` is None ("" when there is no such event)."""
    rows: dict[int, str] = dict(connection.execute(_HEAD_AND_PROBE, {"probe": probe}).all())
    if not rows:
        return (0, GENESIS), ""
    top = max(rows)
    return (top, rows[top]), rows.get(probe if probe is not None else min(rows), "")


_BOUND: WeakKeyDictionary[Engine, HeadWitness] = WeakKeyDictionary()


def bind(engine: Engine, witness: HeadWitness) -> None:
    _BOUND[engine] = witness


def witness_of(engine: Engine) -> HeadWitness:
    found = _BOUND.get(engine)
    if found is None:
        raise RuntimeError("no audit witness is bound to this database engine")
    return found


def witness_for(session: Session) -> HeadWitness:
    bound = session.get_bind()
    return witness_of(bound if isinstance(bound, Engine) else bound.engine)


@dataclass(frozen=True)
class Acceptance:
    witnessed: Witnessed
    found: Head
    problem: str


def record_acceptance(session: Session, *, actor: str, now: datetime) -> Acceptance | None:
    """In the operator's transaction: the audited statement that the chain as it is now, not
    the one witnessed, is the history; None when the chain continues from the witness."""
    witness = witness_for(session)
    head, problem = witness.inspect(session.connection())
    seen = witness.seen
    if problem is None or seen is None:
        return None
    audit.record(
        session,
        action="audit.restore_accepted",
        actor=actor,
        subject=f"audit chain at event {head[0]} instead of the witnessed {seen.seq}",
        now=now,
        details={
            "witnessed": {"seq": seen.seq, "hash": seen.hash},
            "found": {"seq": head[0], "hash": head[1]},
            "problem": problem,
        },
    )
    return Acceptance(seen, head, problem)
