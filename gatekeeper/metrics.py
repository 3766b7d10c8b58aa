"""What operators see in their monitoring: Prometheus metrics, counted in every process.

Under gunicorn each worker is its own process: with PROMETHEUS_MULTIPROC_DIR set (the shipped
gunicorn config sets one up when it is not), every process writes its counts to files in that
directory and a scrape of any worker adds them all up. `gatekeeper worker` processes on the same
host write there too when they share the directory (the systemd units in deploy/ do).

The hooks below are what the rest of the code calls; they are cheap (a lock and an add) and
never fail a request. Figures that live in the database (outbox depth, dead letters, the audit
chain) are not counted here but read at scrape time, see `Snapshot`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"
# A request that matched no route is counted under this label, never under its raw path (which
# could be anything a client sent, a token included).
UNMATCHED_ROUTE = "<unmatched>"

# Counted in this process; a scrape reads them through the multiprocess files when those are on.
_COUNTED = CollectorRegistry(auto_describe=True)

_requests = Counter(
    "gatekeeper_http_requests_total",
    "HTTP requests answered, by route (the URL rule, never the raw path), method and status.",
    ["route", "method", "status"],
    registry=_COUNTED,
)
_latency = Histogram(
    "gatekeeper_http_request_duration_seconds",
    "Time to answer an HTTP request, by route and method.",
    ["route", "method"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
    registry=_COUNTED,
)
_gate_evaluations = Counter(
    "gatekeeper_gate_evaluations_total",
    "Gate answers served to CI, badges and the API, by status (open, pending, blocked).",
    ["status"],
    registry=_COUNTED,
)
_gate_cache_hits = Counter(
    "gatekeeper_gate_cache_hits_total",
    "Gate answers served from the per-process gate cache.",
    registry=_COUNTED,
)
_gate_cache_misses = Counter(
    "gatekeeper_gate_cache_misses_total",
    "Gate answers that had to be evaluated from the database.",
    registry=_COUNTED,
)
_signoff_lead = Histogram(
    "gatekeeper_signoff_lead_time_seconds",
    "Time from a sign-off request to its decision.",
    buckets=(600, 3600, 4 * 3600, 8 * 3600, 86400, 2 * 86400, 4 * 86400, 7 * 86400, 14 * 86400),
    registry=_COUNTED,
)
_outbound_failures = Counter(
    "gatekeeper_outbound_failures_total",
    "Failed deliveries to the outside world, by kind (email; other kinds as they are added).",
    ["kind"],
    registry=_COUNTED,
)


def count_request(route: str, method: str, status: int, seconds: float) -> None:
    _requests.labels(route, method, str(status)).inc()
    _latency.labels(route, method).observe(seconds)


def count_gate(*, cached: bool, status: str) -> None:
    (_gate_cache_hits if cached else _gate_cache_misses).inc()
    _gate_evaluations.labels(status).inc()


def observe_signoff_lead(seconds: float) -> None:
    _signoff_lead.observe(max(seconds, 0.0))


def count_outbound_failure(kind: str) -> None:
    """The hook for every delivery to the outside world that failed (an email the SMTP server
    refused or could not take, a webhook or a platform callback that did not answer 2xx):
    `kind` names the channel, a short fixed word such as "email" or "webhook", never an address
    or a URL."""
    _outbound_failures.labels(kind).inc()


@dataclass(frozen=True)
class OutboxKind:
    """The undelivered rows of one kind of email (its template)."""

    kind: str
    waiting: int = 0
    oldest_age_seconds: float = 0.0
    dead: int = 0


@dataclass(frozen=True)
class Snapshot:
    """What the database says at scrape time."""

    outbox: tuple[OutboxKind, ...] = field(default=())
    audit_chain_length: int = 0


def _database_families(snapshot: Snapshot) -> Iterator[Metric]:
    waiting = GaugeMetricFamily(
        "gatekeeper_outbox_depth", "Emails queued or being sent, by kind.", labels=["kind"]
    )
    oldest = GaugeMetricFamily(
        "gatekeeper_outbox_oldest_age_seconds",
        "Age of the oldest email queued or being sent, by kind (0 when none waits).",
        labels=["kind"],
    )
    dead = GaugeMetricFamily(
        "gatekeeper_outbox_dead_letters",
        "Emails given up on (dead letters) awaiting an admin, by kind.",
        labels=["kind"],
    )
    for row in snapshot.outbox:
        waiting.add_metric([row.kind], row.waiting)
        oldest.add_metric([row.kind], row.oldest_age_seconds)
        dead.add_metric([row.kind], row.dead)
    chain = GaugeMetricFamily(
        "gatekeeper_audit_chain_length", "Events in the tamper-evident audit chain."
    )
    chain.add_metric([], snapshot.audit_chain_length)
    yield from (waiting, oldest, dead, chain)


class _Scrape(Collector):
    def __init__(self, sources: Iterable[Collector], snapshot: Snapshot) -> None:
        self.sources = list(sources)
        self.snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        for source in self.sources:
            yield from source.collect()
        yield from _database_families(self.snapshot)


def multiprocess() -> bool:
    return bool(os.environ.get(MULTIPROCESS_DIR))


def exposition(snapshot: Snapshot) -> bytes:
    """The text a scrape gets: every process's counts (or this one's), then the database's."""
    if multiprocess():
        counted = CollectorRegistry()
        MultiProcessCollector(counted)  # type: ignore[no-untyped-call]  # untyped upstream
        sources: list[Collector] = [counted]
    else:
        sources = [_COUNTED]
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Scrape(sources, snapshot))
    return generate_latest(registry)
