"""What every adapter shares at run time: typed settings, the clock and the per-process caches."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from flask import Flask
from sqlalchemy.orm import Session

from gatekeeper.domain.clock import Clock
from gatekeeper.domain.gate import GateResult
from gatekeeper.services.deployment_gates import GateSettings, PlatformSettings
from gatekeeper.services.gate_cache import GateAnswer, GateCache
from gatekeeper.services.governance import GovernanceSettings
from gatekeeper.services.head_cache import Head
from gatekeeper.services.signoffs import LinkSettings
from gatekeeper.services.tokens import CallerCache
from gatekeeper.services.webhooks import WebhookSettings
from gatekeeper.settings import Settings


@dataclass(frozen=True)
class Runtime:
    """What adapters need besides Flask's config: typed settings and the clock."""

    settings: Settings
    clock: Clock
    gate_cache: GateCache = field(default_factory=GateCache)
    callers: CallerCache = field(default_factory=CallerCache)

    def gate_now(self, session: Session, key: str) -> GateResult:
        """The gate as CI and badges read it, evaluated at most once per change."""
        return self.gate_answer(session, key).result

    def gate_answer(self, session: Session, key: str) -> GateAnswer:
        """The gate with its JSON document and entity tag, as the API sends it."""
        return self.gate_cache.answer(session, key, now=self.clock.now(), **self._gate_reading())

    def cached_gate_answer(self, head: Head, key: str) -> GateAnswer | None:
        """`gate_answer` when one kept for this audit head still holds; None to evaluate."""
        return self.gate_cache.cached_at(head, key, now=self.clock.now(), **self._gate_reading())

    def _gate_reading(self) -> dict[str, Any]:
        return {
            "overdue_policy": self.settings.overdue_review_policy,
            "finding_warn_after": timedelta(days=self.settings.finding_warn_days),
        }

    def link_settings(self) -> LinkSettings:
        s = self.settings
        return LinkSettings(
            base_url=s.base_url,
            secret_keys=s.secret_keys,
            ttl=timedelta(hours=s.signoff_ttl_hours),
            reminder_after=timedelta(hours=s.reminder_after_hours),
            escalate_after=timedelta(hours=s.escalate_after_hours),
            overdue_policy=s.overdue_review_policy,
        )

    def webhook_settings(self) -> WebhookSettings:
        s = self.settings
        return WebhookSettings(
            secret_keys=s.secret_keys,
            allow_private=s.webhook_allow_private,
            timeout=s.webhook_timeout,
        )

    def deployment_gate_settings(self) -> GateSettings:
        s = self.settings
        return GateSettings(
            base_url=s.base_url,
            secret_keys=s.secret_keys,
            overdue_policy=s.overdue_review_policy,
            finding_warn_after=timedelta(days=s.finding_warn_days),
            poll_every=timedelta(seconds=s.gitlab_poll_seconds),
        )

    def platform_settings(self) -> PlatformSettings:
        """Read the App's private key on each call: a rotated key file needs no restart."""
        s = self.settings
        key = ""
        if s.github_private_key_file:
            with open(s.github_private_key_file, encoding="utf-8") as found:
                key = found.read()
        return PlatformSettings(
            secret_keys=s.secret_keys,
            github_app_id=s.github_app_id,
            github_private_key=key,
            github_api_url=s.github_api_url,
            timeout=s.webhook_timeout,
            allow_private=s.webhook_allow_private,
            gitlab_url=s.gitlab_url,
            gitlab_token=s.gitlab_token,
        )

    def governance_settings(self) -> GovernanceSettings:
        s = self.settings
        return GovernanceSettings(
            base_url=s.base_url,
            secret_keys=s.secret_keys,
            review_lead=timedelta(days=s.review_lead_days),
            finding_warn_after=timedelta(days=s.finding_warn_days),
            overdue_policy=s.overdue_review_policy,
            never_fires_releases=s.never_fires_releases,
            learning_review_due_hours=s.learning_review_due_hours,
        )


def runtime(app: Flask) -> Runtime:
    found: Runtime = app.extensions["gatekeeper"]
    return found
