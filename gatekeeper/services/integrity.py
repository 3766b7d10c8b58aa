"""Keys kept outside the database: MACs on the records the gate counts, Ed25519 on audit events.

Someone who can write to the database but holds none of these keys can insert or edit rows, but
cannot make a sign-off or a governance approval count, nor append an audit event that verifies.
The keys reach the services through the engine they bind to (`bind`), so every session of an
application finds the keys it was configured with and no caller has to pass them around.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from gatekeeper.db.models import (
    ChecklistVersion,
    GovernanceReview,
    Package,
    PackageApplication,
    Signoff,
)

# Domain separation: a MAC of one kind of record can never stand for another kind.
RECORD_MAC_CONTEXT = b"gatekeeper.record-mac/1\n"
AUDIT_SIGNATURE_CONTEXT = b"gatekeeper.audit-event/1\n"
SIGNOFF = "signoff"
GOVERNANCE_REVIEW = "governance_review"


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def canonical_record(kind: str, fields: Mapping[str, Any]) -> bytes:
    """One byte string per record: sorted keys, no whitespace, times to the microsecond."""
    encoded = {k: _iso(v) if isinstance(v, datetime) else v for k, v in fields.items()}
    return json.dumps(
        {"kind": kind, "fields": encoded}, sort_keys=True, separators=(",", ":"), ensure_ascii=False
    ).encode()


def signoff_fields(
    signoff: Signoff,
    *,
    package_key: str,
    environment: str,
    version_label: str,
    change_summary: str,
    checklist_sha256: str | None,
) -> dict[str, Any]:
    """What a sign-off's MAC covers: the decision, and what the signer was shown as signed
    (the release's target, the application's version and change summary, the checklist's
    content). A service edit of any of those marks the sign-off stale, so a current sign-off
    whose MAC no longer verifies was changed behind the application's back."""
    fields: dict[str, Any] = {
        "id": signoff.id,
        "package_id": signoff.package_id,
        "package": package_key,
        "environment": environment,
        "package_application_id": signoff.package_application_id,
        "version_label": version_label,
        "change_summary": change_summary,
        "checklist_sha256": checklist_sha256,
        "request_id": signoff.request_id,
        "kind": signoff.kind,
        "section_id": signoff.section_id,
        "item_id": signoff.item_id,
        "signer": signoff.signer,
        "decision": signoff.decision,
        "comment": signoff.comment,
        "evidence": signoff.evidence,
        "scenarios_confirmed": signoff.scenarios_confirmed,
        "revision": signoff.revision,
        "signed_at": signoff.signed_at,
    }
    # Only on a deputy's sign-off: the MACs of sign-offs made before deputies still verify.
    if signoff.on_behalf_of is not None:
        fields["on_behalf_of"] = signoff.on_behalf_of
    return fields


def review_fields(review: GovernanceReview, version: ChecklistVersion) -> dict[str, Any]:
    """What a governance review's MAC covers, including the exact checklist content decided on."""
    return {
        "id": review.id,
        "checklist_version_id": review.checklist_version_id,
        "application_id": version.application_id,
        "version": version.version,
        "sha256": version.sha256,
        "reviewer": review.reviewer,
        "outcome": review.outcome,
        "consulted": review.consulted,
        "notes": review.notes,
        "reviewed_at": review.reviewed_at,
    }


def record_key_id(key: str) -> str:
    """Names a key without revealing it (stored next to each MAC)."""
    return hashlib.sha256(b"gatekeeper.record-key-id\n" + key.encode()).hexdigest()[:16]


def audit_key_id(public_key: Ed25519PublicKey) -> str:
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def public_key_text(public_key: Ed25519PublicKey) -> str:
    """The raw 32-byte public key, base64: what an evidence pack carries."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode()


def public_key_from_text(text: str) -> Ed25519PublicKey:
    return Ed25519PublicKey.from_public_bytes(base64.b64decode(text, validate=True))


def event_signature_valid(public_key: Ed25519PublicKey, event_hash: str, signature: str) -> bool:
    try:
        public_key.verify(
            base64.b64decode(signature, validate=True),
            AUDIT_SIGNATURE_CONTEXT + event_hash.encode(),
        )
    except (InvalidSignature, ValueError):
        return False
    return True


@dataclass(frozen=True)
class RecordKeys:
    """HMAC-SHA256 keys: the first signs, any verifies (rotation adds a new key in front)."""

    keys: tuple[str, ...]
    _by_id: dict[str, bytes] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.keys:
            raise ValueError("at least one record key is needed")
        object.__setattr__(self, "_by_id", {record_key_id(k): k.encode() for k in self.keys})

    def sign(self, kind: str, fields: Mapping[str, Any]) -> tuple[str, str]:
        """(key id, MAC) of one record."""
        key = self.keys[0]
        return record_key_id(key), self._mac(key.encode(), kind, fields)

    def verifies(
        self, kind: str, fields: Mapping[str, Any], key_id: str | None, mac: str | None
    ) -> bool:
        key = self._by_id.get(key_id or "")
        if key is None or not mac:
            return False
        return hmac.compare_digest(self._mac(key, kind, fields), mac)

    @staticmethod
    def _mac(key: bytes, kind: str, fields: Mapping[str, Any]) -> str:
        message = RECORD_MAC_CONTEXT + canonical_record(kind, fields)
        return hmac.new(key, message, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class AuditKeys:
    """The Ed25519 key that signs new audit events, and every public key that verifies."""

    signing_key: Ed25519PrivateKey
    public_keys: Mapping[str, Ed25519PublicKey]

    @property
    def signing_key_id(self) -> str:
        return audit_key_id(self.signing_key.public_key())

    def sign(self, event_hash: str) -> tuple[str, str]:
        """(key id, base64 signature) over an event's chain hash, which covers all its fields."""
        signature = self.signing_key.sign(AUDIT_SIGNATURE_CONTEXT + event_hash.encode())
        return self.signing_key_id, base64.b64encode(signature).decode()

    def verifies(self, event_hash: str, key_id: str | None, signature: str | None) -> bool:
        public_key = self.public_keys.get(key_id or "")
        if public_key is None or not signature:
            return False
        return event_signature_valid(public_key, event_hash, signature)

    def published(self) -> dict[str, str]:
        """Key id -> base64 public key, for evidence packs and offline verification."""
        return {kid: public_key_text(k) for kid, k in sorted(self.public_keys.items())}

    @classmethod
    def from_files(cls, files: Sequence[str]) -> AuditKeys:
        """The first file is the private signing key; later ones, private or public, verify."""
        if not files:
            raise ValueError("at least one audit signing key file is needed")
        loaded = [_load_pem(Path(f)) for f in files]
        signing = loaded[0]
        if not isinstance(signing, Ed25519PrivateKey):
            raise ValueError(f"{files[0]} must hold an Ed25519 private key (it signs new events)")
        public = [_public(k) for k in loaded]
        return cls(signing, {audit_key_id(k): k for k in public})


def _public(key: Ed25519PrivateKey | Ed25519PublicKey) -> Ed25519PublicKey:
    return key.public_key() if isinstance(key, Ed25519PrivateKey) else key


def _load_pem(path: Path) -> Ed25519PrivateKey | Ed25519PublicKey:
    data = path.read_bytes()
    try:
        if b"PRIVATE KEY" in data:
            private = serialization.load_pem_private_key(data, password=None)
            if isinstance(private, Ed25519PrivateKey):
                return private
        else:
            public = serialization.load_pem_public_key(data)
            if isinstance(public, Ed25519PublicKey):
                return public
    except ValueError as error:
        raise ValueError(f"{path} is not a readable PEM key ({error})") from None
    raise ValueError(f"{path} does not hold an Ed25519 key")


def published_keys(files: Sequence[Path]) -> dict[str, str]:
    """Key id -> base64 public key of PEM files (private or public), to pin when verifying."""
    public = [
        k.public_key() if isinstance(k, Ed25519PrivateKey) else k for k in map(_load_pem, files)
    ]
    return {audit_key_id(k): public_key_text(k) for k in public}


@dataclass(frozen=True)
class Keyring:
    records: RecordKeys
    audit: AuditKeys


_BOUND: weakref.WeakKeyDictionary[Engine, Keyring] = weakref.WeakKeyDictionary()


def bind(engine: Engine, keyring: Keyring) -> None:
    """Every session on `engine` signs and verifies with `keyring`."""
    _BOUND[engine] = keyring


def keyring_of(session: Session) -> Keyring:
    """The keys of the application this session belongs to; none bound is a wiring bug, and
    nothing is signed or counted without keys."""
    bound = session.get_bind()
    engine = bound if isinstance(bound, Engine) else bound.engine
    found = _BOUND.get(engine)
    if found is None:
        raise RuntimeError("no record or audit keys are bound to this database engine")
    return found


def seal_signoff(
    session: Session, signoff: Signoff, package: Package, target: PackageApplication
) -> None:
    """Write the MAC of a flushed sign-off, in the transaction that writes it."""
    version = target.checklist_version
    fields = signoff_fields(
        signoff,
        package_key=package.key,
        environment=package.environment,
        version_label=target.version_label,
        change_summary=target.change_summary,
        checklist_sha256=version.sha256 if version is not None else None,
    )
    signoff.mac_key_id, signoff.mac = keyring_of(session).records.sign(SIGNOFF, fields)
    session.flush()


def seal_review(session: Session, review: GovernanceReview, version: ChecklistVersion) -> None:
    """Write the MAC of a flushed governance review, in the transaction that writes it."""
    fields = review_fields(review, version)
    review.mac_key_id, review.mac = keyring_of(session).records.sign(GOVERNANCE_REVIEW, fields)
    session.flush()
