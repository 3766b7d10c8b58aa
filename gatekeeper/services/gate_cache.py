"""Evaluated gates kept per process for the read paths CI polls (the gate API and badges).

Why the audit head can stand for "nothing changed": every change that can move a gate (sign-offs,
package edits and lifecycle, checklist syncs and reviews, findings) appends an audit event in its
own transaction, and appends are serialised. The newest committed (sequence, hash) therefore names
one state of everything the gate reads. The head is read before the material, so an evaluation is
never filed under a head newer than what it saw; and every process reads the head from the same
database, so gunicorn workers never disagree for longer than a commit.

The clock is the other input: an entry is used only in [evaluated at, domain stable_until).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime, timedelta

from cachetools import LRUCache
from sqlalchemy.orm import Session

from gatekeeper.db.unit_of_work import ORIGIN_KEY
from gatekeeper.domain import gate as gate_rules
from gatekeeper.services import audit, packages

CacheKey = tuple[str, str, timedelta]


@dataclass(frozen=True)
class _Entry:
    head: tuple[int, str]
    evaluated_at: datetime
    stable_until: datetime | None
    result: gate_rules.GateResult

    def serves(self, head: tuple[int, str], now: datetime) -> bool:
        return (
            self.head == head
            and self.evaluated_at <= now
            and (self.stable_until is None or now < self.stable_until)
        )


class GateCache:
    def __init__(self, maxsize: int = 1024) -> None:
        self._entries: LRUCache[CacheKey, _Entry] = LRUCache(maxsize)
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def evaluate(
        self,
        session: Session,
        key: str,
        *,
        now: datetime,
        overdue_policy: str,
        finding_warn_after: timedelta = gate_rules.DEFAULT_FINDING_WARN_AFTER,
    ) -> gate_rules.GateResult:
        """The package's gate now, from the cache when nothing it reads has changed."""
        # Inside a write transaction the head may name events that are later rolled back, and
        # a rolled-back sequence number is reused by the next writer: evaluate, never file.
        cacheable = ORIGIN_KEY not in session.info
        cache_key = (key, overdue_policy, finding_warn_after)
        head = audit.latest(session) if cacheable else None
        if head is not None:
            with self._lock:
                entry = self._entries.get(cache_key)
                if entry is not None and entry.serves(head, now):
                    self.hits += 1
                    return entry.result
                self.misses += 1
        gate = packages.gate_input(
            session,
            key,
            now=now,
            overdue_policy=overdue_policy,
            finding_warn_after=finding_warn_after,
        )
        result = gate_rules.evaluate(gate)
        if head is not None:
            with self._lock:
                self._entries[cache_key] = _Entry(head, now, gate_rules.stable_until(gate), result)
        return result
