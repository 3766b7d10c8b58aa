"""Deployments CI reports: what a report holds, and whether an open or released gate covered it."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from gatekeeper.domain import gate as gate_rules
from gatekeeper.domain import package as lifecycle
from gatekeeper.domain.checklist import SLUG_PATTERN
from gatekeeper.domain.errors import ValidationFailed

SHA_PATTERN = r"^[0-9a-fA-F]{7,64}$"
_SHA_RE = re.compile(SHA_PATTERN)
_SLUG_RE = re.compile(SLUG_PATTERN)
MAX_APPLICATIONS = 200
MAX_ENVIRONMENT_CHARS = 64
MAX_VERSION_CHARS = 100
MAX_URL_CHARS = 2000
# Git shows 7 hex digits as the shortest abbreviation of a commit.
MIN_SHA_PREFIX = 7

# Exception codes of the population export (stable; scripts may match on them).
GATE_NOT_OPEN = "DEPLOYMENT_GATE_NOT_OPEN"
VERSION_NOT_APPROVED = "DEPLOYMENT_VERSION_NOT_APPROVED"
UNCOVERED_CODES = (GATE_NOT_OPEN, VERSION_NOT_APPROVED)


@dataclass(frozen=True, slots=True)
class DeployedApplication:
    """One application as a pipeline deployed it: by version label, or by commit sha."""

    application: str
    version: str | None = None
    sha: str | None = None

    def matches(self, approved_version: str) -> bool:
        """Whether this is the version the package holds. A version is compared exactly; a sha
        (given without a version) matches a package version that is that commit's sha or an
        abbreviation of it of at least 7 digits, either way round, ignoring case."""
        if self.version is not None:
            return self.version == approved_version
        sha, label = (self.sha or "").lower(), approved_version.lower()
        shorter = min(len(sha), len(label))
        return shorter >= MIN_SHA_PREFIX and sha[:shorter] == label[:shorter]

    @property
    def label(self) -> str:
        return self.version if self.version is not None else f"sha {self.sha}"

    def to_dict(self) -> dict[str, Any]:
        return {"application": self.application, "version": self.version, "sha": self.sha}


@dataclass(frozen=True, slots=True)
class DeploymentReport:
    environment: str
    applications: tuple[DeployedApplication, ...]
    pipeline_url: str


def check_report(report: DeploymentReport) -> DeploymentReport:
    """The report cleaned up, or ValidationFailed naming what is wrong with it."""
    environment = report.environment.strip()
    if not environment or len(environment) > MAX_ENVIRONMENT_CHARS:
        raise ValidationFailed(f"environment must be 1-{MAX_ENVIRONMENT_CHARS} characters")
    if not report.applications or len(report.applications) > MAX_APPLICATIONS:
        raise ValidationFailed(f"list 1-{MAX_APPLICATIONS} deployed applications")
    seen: set[str] = set()
    cleaned = []
    for deployed in report.applications:
        cleaned.append(_check_application(deployed, seen))
    url = report.pipeline_url.strip()
    parts = urlsplit(url)
    if len(url) > MAX_URL_CHARS or parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValidationFailed("pipeline_url must be the http(s) link of the pipeline run")
    return DeploymentReport(environment, tuple(cleaned), url)


def _check_application(deployed: DeployedApplication, seen: set[str]) -> DeployedApplication:
    name = deployed.application
    if not _SLUG_RE.fullmatch(name):
        raise ValidationFailed(f"{name!r} is not an application slug")
    if name in seen:
        raise ValidationFailed(f"application {name!r} is listed twice")
    seen.add(name)
    version = deployed.version.strip() if deployed.version is not None else None
    if version is not None and not 0 < len(version) <= MAX_VERSION_CHARS:
        raise ValidationFailed(f"the version of {name} must be 1-{MAX_VERSION_CHARS} characters")
    if deployed.sha is not None and not _SHA_RE.fullmatch(deployed.sha):
        raise ValidationFailed(f"the sha of {name} must be 7-64 hexadecimal digits")
    if version is None and deployed.sha is None:
        raise ValidationFailed(f"give the version or the sha deployed of {name}")
    return DeployedApplication(name, version, deployed.sha.lower() if deployed.sha else None)


@dataclass(frozen=True, slots=True)
class Uncovered:
    """Why no open or released gate covered (part of) a deployment."""

    code: str
    message: str
    application: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "application": self.application, "message": self.message}


def uncovered(
    *,
    package: str,
    package_state: str,
    gate_status: str,
    approved: Mapping[str, str],
    deployed: Sequence[DeployedApplication],
) -> tuple[Uncovered, ...]:
    """What the gate as it stood when the deployment was reported did not cover.

    `approved` holds the version of each application the package held at that moment. A
    released package covers its versions; a package in review covers them only while its gate
    is open; a draft or a cancelled package covers nothing.
    """
    found: list[Uncovered] = []
    gate_open = package_state == lifecycle.RELEASED or (
        package_state == lifecycle.IN_REVIEW and gate_status == gate_rules.OPEN
    )
    if not gate_open:
        found.append(
            Uncovered(
                GATE_NOT_OPEN,
                f"deployed while package {package} was {package_state.replace('_', ' ')} and "
                f"its gate {gate_status}: the release was not allowed yet",
            )
        )
    for item in deployed:
        held = approved.get(item.application)
        if held is None:
            found.append(
                Uncovered(
                    VERSION_NOT_APPROVED,
                    f"{item.application} {item.label} was deployed, but package {package} "
                    f"does not contain {item.application}",
                    item.application,
                )
            )
        elif not item.matches(held):
            found.append(
                Uncovered(
                    VERSION_NOT_APPROVED,
                    f"{item.application} {item.label} was deployed, but package {package} "
                    f"holds {item.application} {held}",
                    item.application,
                )
            )
    return tuple(found)
