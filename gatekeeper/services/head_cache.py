"""Per-process caches whose entries stay valid while the audit chain's head does not move.

Why the head can stand for "nothing changed": every change Gatekeeper makes to what it decides on
(sign-offs, package edits and lifecycle, checklist syncs and reviews, findings, API tokens
created or revoked) appends an audit event in its own transaction, and appends are serialised.
The newest committed (sequence, hash) therefore names one state of all of it. Every process reads
the head from the same database, so gunicorn workers never disagree for longer than a commit.

Rules that keep it honest:
- Read the head before what the value is computed from: a value is then never filed under a
  head newer than what it saw.
- Never inside a write transaction: its head may name events that roll back, and a rolled-back
  sequence number is reused by the next writer.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

from cachetools import LRUCache
from sqlalchemy.orm import Session

from gatekeeper.db.unit_of_work import ORIGIN_KEY
from gatekeeper.services import audit, head_witness

# `Head as Head`: the caches' users name it from here.
from gatekeeper.services.head_witness import Head as Head

K = TypeVar("K")
V = TypeVar("V")

_HEAD_MEMO = "gatekeeper.committed_head"


def committed_head(session: Session) -> Head | None:
    """The head this read transaction sees, read once per transaction; None while writing, and
    while the chain does not continue from the head this host witnessed (nothing is then
    served from a cache: every gate is evaluated, and names the break)."""
    if _writing(session):
        return None
    head, broken = _read_head(session)
    return head if broken is None else None


def chain_break(session: Session) -> str | None:
    """What is wrong with the audit chain this transaction reads, or None when it continues
    from the head this host witnessed (services/head_witness.py)."""
    if _writing(session):
        # A write transaction's head may name its own events: checked, never witnessed.
        return head_witness.witness_for(session).inspect(session.connection())[1]
    return _read_head(session)[1]


def _writing(session: Session) -> bool:
    # The session opens a new Connection for each transaction: it names the transaction.
    return ORIGIN_KEY in session.info or audit.appended_in(session, session.connection())


def _read_head(session: Session) -> tuple[Head, str | None]:
    connection = session.connection()
    memo = session.info.get(_HEAD_MEMO)
    if memo is not None and memo[0] is connection:
        found: tuple[Head, str | None] = memo[1]
        return found
    found = head_witness.witness_for(session).observe(connection)
    session.info[_HEAD_MEMO] = (connection, found)
    return found


class HeadCache(Generic[K, V]):
    """An LRU of values, each filed under the head it was computed at."""

    def __init__(self, maxsize: int = 1024) -> None:
        self._entries: LRUCache[K, tuple[Head, V]] = LRUCache(maxsize)
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(
        self, key: K, head: Head | None, usable: Callable[[V], bool] = lambda _value: True
    ) -> V | None:
        if head is None:
            return None
        with self._lock:
            found = self._entries.get(key)
            if found is not None and found[0] == head and usable(found[1]):
                self.hits += 1
                return found[1]
            self.misses += 1
            return None

    def put(self, key: K, head: Head | None, value: V) -> None:
        if head is not None:
            with self._lock:
                self._entries[key] = (head, value)

    def forget(self, key: K) -> None:
        with self._lock:
            self._entries.pop(key, None)
