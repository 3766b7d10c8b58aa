"""Post the outbox's calls to CI platforms: GitHub status reports and decisions on deployment
protection rules (as a GitHub App), with retries, backoff and dead letters like webhooks."""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple
from urllib.parse import quote, urlencode

import jwt
import sqlalchemy as sa
from cryptography.fernet import InvalidToken
from sqlalchemy.orm import Session, scoped_session

from gatekeeper import metrics
from gatekeeper.db.models import OutboxMessage, PlatformDeployment
from gatekeeper.db.unit_of_work import unit_of_work
from gatekeeper.domain.clock import Clock
from gatekeeper.notify import azure_devops, webhooks
from gatekeeper.notify.worker import LEASE, Claim, DeliveryReport, claim

log = logging.getLogger(__name__)

KIND = "platform_call"
BATCH_SIZE = 50
RETRY_BUDGET = timedelta(hours=24)
SENDING_TIME = LEASE / 2
RESPONSE_KEPT = 500
# A page of 100 deployments with their jobs and users: GitLab's answers are large.
GITLAB_LIST_KEPT = 4_000_000
USER_AGENT = "Gatekeeper-Platforms/1"
GITHUB_API_VERSION = "2022-11-28"
# GitHub refuses a JWT issued in the future: its clock may be behind ours.
JWT_BACKDATE = timedelta(seconds=60)
# At most 10 minutes, GitHub's limit, counted from the backdated issue time.
JWT_LIFETIME = timedelta(minutes=9)
# A token this close to its expiry is renewed rather than used.
TOKEN_MARGIN = timedelta(minutes=1)
# Answers retrying can change: the token expired, the platform is busy or rate-limits.
_TRANSIENT = frozenset({401, 408, 409, 425, 429})

unseal = webhooks.unseal


def seal_callback(callback: dict[str, Any], secret_keys: Sequence[str]) -> str:
    """Where and how to answer a platform, encrypted: it may hold a job's access token."""
    return webhooks.seal(json.dumps(callback, sort_keys=True), secret_keys)


@dataclass(frozen=True)
class PlatformSettings:
    secret_keys: Sequence[str]
    github_app_id: str | None = None
    github_private_key: str = ""
    github_api_url: str = "https://api.github.com"
    timeout: float = 10.0
    allow_private: bool = False
    gitlab_url: str = "https://gitlab.com"
    gitlab_token: str | None = None


class Answer(NamedTuple):
    status: int | None
    text: str
    error: str


def http(
    method: str,
    url: str,
    *,
    headers: dict[str, str],
    body: Any | None,
    settings: PlatformSettings,
    keep: int = RESPONSE_KEPT,
) -> Answer:
    """One call to a platform's API through the webhooks' guard: the address is checked after
    DNS resolution and pinned, and no redirect is followed, so the App's installation token or
    the GitLab bot's token reaches only the host the check named.

    Every URL is under an API address the operator set (GATEKEEPER_GITHUB_API_URL,
    GATEKEEPER_GITLAB_URL; integrations/github.py refuses a callback outside it), and a
    self-managed GitLab or GitHub Enterprise usually has a private address: private addresses
    pass, cloud metadata and link-local ones never do."""
    try:
        target = webhooks.resolve(url, allow_private=True)
    except webhooks.RefusedTarget as refused:
        return Answer(None, "", f"refused: {refused}")
    except LookupError as exc:
        return Answer(None, "", str(exc))
    sent = {"User-Agent": USER_AGENT, **headers}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        sent["Content-Type"] = "application/json"
    answer = webhooks.exchange(method, target, data, sent, timeout=settings.timeout, keep=keep)
    return Answer(answer.status, answer.text, answer.error)


def app_jwt(app_id: str, private_key: str, now: datetime) -> str:
    """The GitHub App's own JWT (RS256), valid under 10 minutes, backdated for clock drift."""
    issued = now - JWT_BACKDATE
    claims = {"iat": int(issued.timestamp()), "exp": int((issued + JWT_LIFETIME).timestamp())}
    return jwt.encode({**claims, "iss": app_id}, private_key, algorithm="RS256")


@dataclass
class GitHubTokens:
    """Installation access tokens, kept until shortly before they expire, per process."""

    _tokens: dict[int, tuple[str, datetime]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def get(self, settings: PlatformSettings, installation: int, now: datetime) -> str | Answer:
        with self._lock:
            kept = self._tokens.get(installation)
        if kept is not None and now < kept[1] - TOKEN_MARGIN:
            return kept[0]
        if not settings.github_app_id or not settings.github_private_key:
            return Answer(None, "", "the GitHub App is not configured")
        token = app_jwt(settings.github_app_id, settings.github_private_key, now)
        answer = http(
            "POST",
            f"{settings.github_api_url}/app/installations/{installation}/access_tokens",
            headers=_github_headers(token),
            body=None,
            settings=settings,
        )
        if answer.status != 201:
            return answer._replace(error=f"installation token: {answer.error or answer.status}")
        found = json.loads(answer.text) if len(answer.text) < RESPONSE_KEPT else None
        if not found:
            return Answer(None, "", "installation token: unreadable answer")
        expires = datetime.fromisoformat(found["expires_at"].replace("Z", "+00:00"))
        with self._lock:
            self._tokens[installation] = (found["token"], expires.astimezone(UTC))
        return str(found["token"])

    def forget(self, installation: int) -> None:
        with self._lock:
            self._tokens.pop(installation, None)


TOKENS = GitHubTokens()


def _github_headers(token: str) -> dict[str, str]:
    return {
        "Authorization": f"Bearer {token}",
        "Accept": "application/vnd.github+json",
        "X-GitHub-Api-Version": GITHUB_API_VERSION,
    }


def _github(
    call: dict[str, Any], callback: dict[str, Any], *, settings: PlatformSettings, now: datetime
) -> Answer:
    body: dict[str, str] = {"environment_name": callback["environment"], "comment": call["comment"]}
    if call["call"] == "decision":
        body["state"] = call["state"]
    installation = int(callback["installation"])
    for _ in range(2):
        token = TOKENS.get(settings, installation, now)
        if isinstance(token, Answer):
            return token
        answer = http(
            "POST",
            callback["url"],
            headers=_github_headers(token),
            body=body,
            settings=settings,
        )
        if answer.status != 401:
            return answer
        # Revoked or expired early: one new token, then the row's own retries.
        TOKENS.forget(installation)
    return answer


def _gitlab_project(project: str) -> str:
    """GitLab's API names a project by its full path, URL-encoded as one segment."""
    return quote(project, safe="")


def gitlab_blocked(
    settings: PlatformSettings, project: str, environment: str
) -> list[dict[str, Any]] | Answer:
    """The project's deployments to `environment` that wait for approval (newest 100)."""
    query = urlencode({"status": "blocked", "environment": environment, "per_page": 100})
    answer = http(
        "GET",
        f"{settings.gitlab_url}/api/v4/projects/{_gitlab_project(project)}/deployments?{query}",
        headers={"PRIVATE-TOKEN": settings.gitlab_token or ""},
        body=None,
        settings=settings,
        keep=GITLAB_LIST_KEPT,
    )
    if answer.status != 200:
        return answer._replace(error=answer.error or f"HTTP {answer.status}")
    try:
        found = json.loads(answer.text)
    except ValueError:
        return Answer(answer.status, "", "the deployments list is not JSON")
    return [d for d in found if isinstance(d, dict)] if isinstance(found, list) else []


def _gitlab(
    call: dict[str, Any], callback: dict[str, Any], *, settings: PlatformSettings
) -> Answer:
    return http(
        "POST",
        f"{settings.gitlab_url}/api/v4/projects/{_gitlab_project(callback['project'])}"
        f"/deployments/{int(callback['deployment'])}/approval",
        headers={"PRIVATE-TOKEN": settings.gitlab_token or ""},
        body={"status": call["state"], "comment": call["comment"]},
        settings=settings,
    )


class _Row(NamedTuple):
    id: int
    attempts: int
    created_at: datetime
    body_text: str


def _session(session: Session | scoped_session[Session]) -> Session:
    return session() if isinstance(session, scoped_session) else session


def deliver(
    session: Session | scoped_session[Session],
    *,
    worker: str,
    clock: Clock,
    settings: PlatformSettings,
    limit: int = BATCH_SIZE,
) -> DeliveryReport:
    """One pass over due platform calls, in the order they were queued; a status report whose
    deployment was decided meanwhile is moot."""
    taken = claim(session, worker=worker, clock=clock, limit=limit, kind=KIND)
    report = DeliveryReport()
    if not taken.ids:
        return report
    rows = [
        _Row._make(r)
        for r in _session(session).execute(
            sa.select(
                OutboxMessage.id,
                OutboxMessage.attempts,
                OutboxMessage.created_at,
                OutboxMessage.body_text,
            )
            .where(OutboxMessage.id.in_(taken.ids))
            .order_by(OutboxMessage.id)
        )
    ]
    calls = {row.id: json.loads(row.body_text) for row in rows}
    deployments = {
        d.id: (d.platform, d.state, d.callback_sealed)
        for d in _session(session).scalars(
            sa.select(PlatformDeployment).where(
                PlatformDeployment.id.in_({c["deployment"] for c in calls.values()})
            )
        )
    }
    _session(session).rollback()  # no transaction stays open while we talk HTTP
    for index, row in enumerate(rows):
        if clock.now() >= taken.at + SENDING_TIME:
            _release(session, taken, [r.id for r in rows[index:]], report)
            break
        call = calls[row.id]
        platform, state, sealed = deployments[call["deployment"]]
        if call["call"] == "report" and state != "waiting":
            _record(
                session, taken, row, ("moot", "decided before the report went out"), clock, report
            )
            continue
        try:
            callback = json.loads(unseal(sealed, settings.secret_keys))
        except InvalidToken:
            outcome = ("dead", "the callback cannot be read: was its secret key removed?")
            _record(session, taken, row, outcome, clock, report)
            continue
        started = time.monotonic()
        if platform == "azure_devops":
            status, error = azure_devops.post_event(
                callback, call, timeout=settings.timeout, allow_private=settings.allow_private
            )
            answer = Answer(status, "", error)
        elif platform == "gitlab":
            answer = _gitlab(call, callback, settings=settings)
        else:
            answer = _github(call, callback, settings=settings, now=clock.now())
        log.info(
            "%s %s to %s: %s in %d ms",
            platform,
            call["call"],
            callback.get("url"),
            answer.status,
            (time.monotonic() - started) * 1000,
        )
        _record(session, taken, row, _outcome(answer), clock, report)
    return report


def _outcome(answer: Answer) -> tuple[str, str]:
    if answer.status is not None and 200 <= answer.status < 300:
        return ("sent", "")
    error = answer.error or f"HTTP {answer.status}"
    # A 4xx other than the transient ones, or an address the SSRF guard refuses, stays so.
    permanent = error.startswith("refused: ") or (
        answer.status is not None and 400 <= answer.status < 500
    )
    return ("dead" if permanent and answer.status not in _TRANSIENT else "retry", error)


def _release(
    session: Session | scoped_session[Session], taken: Claim, ids: list[int], report: DeliveryReport
) -> None:
    with unit_of_work(session) as tx:
        tx.execute(
            sa.update(OutboxMessage)
            .where(OutboxMessage.id.in_(ids), *taken.holds())
            .values(state="queued", claimed_by=None, claimed_at=None)
            .execution_options(synchronize_session=False)
        )
        report.released += len(ids)


def _record(
    session: Session | scoped_session[Session],
    taken: Claim,
    row: _Row,
    outcome: tuple[str, str],
    clock: Clock,
    report: DeliveryReport,
) -> None:
    now = clock.now()
    state, error = outcome
    with unit_of_work(session) as tx:
        message = tx.scalar(
            sa.select(OutboxMessage).where(OutboxMessage.id == row.id, *taken.holds())
        )
        if message is None:
            log.warning("platform call %s was taken over by another worker", row.id)
            return
        message.attempts = row.attempts + 1
        message.claimed_by = message.claimed_at = None
        message.last_error = error[:2000]
        if state == "sent":
            message.state, message.sent_at = "sent", now
            report.sent += 1
            return
        if state == "moot":
            message.state = "moot"
            report.moot += 1
            return
        report.errors.append(f"platform call {row.id}: {error}")
        metrics.count_outbound_failure("platform_call")
        deadline = row.created_at + RETRY_BUDGET
        if state == "dead" or now >= deadline:
            message.state = "dead"
            report.dead += 1
            log.error("platform call %s dead-lettered: %s", row.id, error)
            return
        message.state = "queued"
        jitter = random.random()  # noqa: S311  # spreads retries out; nothing secret
        delay = webhooks.backoff(message.attempts, jitter=jitter)
        message.next_attempt_at = min(now + delay, deadline)
        report.retried += 1
