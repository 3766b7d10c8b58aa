"""Keys a production configuration needs, written where a test can point at them."""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

RECORD_KEY = "r" * 40


def write_audit_key(path: Path, *, public_only: bool = False) -> Path:
    """A new Ed25519 key as PEM at `path` (only its public half with `public_only`)."""
    private = Ed25519PrivateKey.generate()
    if public_only:
        pem = private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    else:
        pem = private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pem)
    return path


def production_keys(folder: Path) -> dict[str, str]:
    """GATEKEEPER_RECORD_KEYS and GATEKEEPER_AUDIT_SIGNING_KEY_FILE for a production config."""
    return {
        "GATEKEEPER_RECORD_KEYS": RECORD_KEY,
        "GATEKEEPER_AUDIT_SIGNING_KEY_FILE": str(write_audit_key(folder / "audit-key.pem")),
    }
