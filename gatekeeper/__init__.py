"""Gatekeeper: a release-gate checklist engine."""

__version__ = "0.1.0"
