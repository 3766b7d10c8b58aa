"""Evaluated gates kept per process for the read paths CI polls (the gate API and badges).

An entry is used while the audit head is the one it was evaluated at (see services/head_cache)
and the clock is in [evaluated at, domain stable_until): time alone can change a gate only at
the moments stable_until names.

Each entry also keeps the gate's JSON document and its entity tag, encoded once per evaluation:
a poll that hits the cache sends stored bytes (200) or, when the caller already holds them,
nothing at all (304).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from gatekeeper import metrics
from gatekeeper.domain import gate as gate_rules
from gatekeeper.services import packages
from gatekeeper.services.head_cache import Head, HeadCache, committed_head


@dataclass(frozen=True)
class GateAnswer:
    """One evaluation of a gate, as the API sends it."""

    result: gate_rules.GateResult
    body: bytes  # the JSON document
    # Strong: a hash of the very bytes of `body`, so it changes whenever anything in the document
    # does (status, digest, counts, who is waited on, blockers, warnings and their ages).
    etag: str

    @classmethod
    def of(cls, result: gate_rules.GateResult) -> GateAnswer:
        body = json.dumps(result.to_dict(), separators=(",", ":")).encode()
        return cls(result, body, f'"{hashlib.sha256(body).hexdigest()[:32]}"')


@dataclass(frozen=True)
class _Evaluated:
    evaluated_at: datetime
    stable_until: datetime | None
    answer: GateAnswer

    def holds_at(self, now: datetime) -> bool:
        return self.evaluated_at <= now and (self.stable_until is None or now < self.stable_until)


class GateCache(HeadCache[tuple[str, str, timedelta], _Evaluated]):
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
        return self.answer(
            session,
            key,
            now=now,
            overdue_policy=overdue_policy,
            finding_warn_after=finding_warn_after,
        ).result

    def answer(
        self,
        session: Session,
        key: str,
        *,
        now: datetime,
        overdue_policy: str,
        finding_warn_after: timedelta = gate_rules.DEFAULT_FINDING_WARN_AFTER,
    ) -> GateAnswer:
        """The package's gate now with its JSON document, encoded once per evaluation."""
        head = committed_head(session)
        found = self.cached_at(
            head,
            key,
            now=now,
            overdue_policy=overdue_policy,
            finding_warn_after=finding_warn_after,
        )
        if found is not None:
            return found
        gate = packages.gate_input(
            session,
            key,
            now=now,
            overdue_policy=overdue_policy,
            finding_warn_after=finding_warn_after,
        )
        answer = GateAnswer.of(gate_rules.evaluate(gate))
        self.put(
            (key, overdue_policy, finding_warn_after),
            head,
            _Evaluated(now, gate_rules.stable_until(gate), answer),
        )
        metrics.count_gate(cached=False, status=answer.result.status)
        return answer

    def cached_at(
        self,
        head: Head | None,
        key: str,
        *,
        now: datetime,
        overdue_policy: str,
        finding_warn_after: timedelta,
    ) -> GateAnswer | None:
        """The answer kept for this head, if it still holds at `now`; None to evaluate."""
        found = self.get((key, overdue_policy, finding_warn_after), head, lambda e: e.holds_at(now))
        if found is None:
            return None
        metrics.count_gate(cached=True, status=found.answer.result.status)
        return found.answer
