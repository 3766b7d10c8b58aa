"""Sign-off decisions: what each kind of signer may decide, what must accompany it, who may sign."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from gatekeeper.domain.checklist import Checklist, Item
from gatekeeper.domain.errors import PermissionDenied, ValidationFailed

ITEM = "item"
KEY_USER = "key_user"
KINDS = (ITEM, KEY_USER)

PASS = "pass"  # noqa: S105 - a decision name, not a password
FAIL = "fail"
NOT_APPLICABLE = "not_applicable"
CONFIRMED = "confirmed"
PROBLEM = "problem"
DECISIONS = {ITEM: (PASS, FAIL, NOT_APPLICABLE), KEY_USER: (CONFIRMED, PROBLEM)}
ALL_DECISIONS = (PASS, FAIL, NOT_APPLICABLE, CONFIRMED, PROBLEM)
# Decisions that satisfy a requirement; the others block the gate.
POSITIVE = (PASS, NOT_APPLICABLE, CONFIRMED)

MAX_COMMENT_CHARS = 4000
MAX_EVIDENCE_CHARS = 4000

# Request states
PENDING = "pending"
SIGNED = "signed"
STALE = "stale"
REVOKED = "revoked"
REQUEST_STATES = (PENDING, SIGNED, STALE, REVOKED)


@dataclass(frozen=True, slots=True)
class Decision:
    """What a signer submits; validated against the item or key-user requirement it answers."""

    kind: str
    decision: str
    comment: str = ""
    evidence: str = ""
    scenarios_confirmed: tuple[int, ...] = ()


def validate_decision(submitted: Decision, *, item: Item | None, scenarios: int) -> Decision:
    """Return the decision cleaned up, or raise ValidationFailed saying what is missing.

    Evidence is kept only where the item asks for it (`url` or `text`): whatever else a client
    sends as evidence (on an `evidence: none` item, on key-user validation) is dropped, never
    stored or shown.
    """
    if submitted.decision not in DECISIONS.get(submitted.kind, ()):
        allowed = ", ".join(DECISIONS.get(submitted.kind, ()))
        raise ValidationFailed(f"decision must be one of: {allowed}")
    comment = submitted.comment.strip()
    asked = item.evidence if submitted.kind == ITEM and item is not None else "none"
    evidence = submitted.evidence.strip() if asked != "none" else ""
    if len(comment) > MAX_COMMENT_CHARS or len(evidence) > MAX_EVIDENCE_CHARS:
        raise ValidationFailed(
            f"comments and evidence are limited to {MAX_COMMENT_CHARS} characters"
        )
    if submitted.decision == NOT_APPLICABLE and not comment:
        raise ValidationFailed("say why this item does not apply (a reason is required)")
    if submitted.decision == FAIL and not comment:
        raise ValidationFailed("say what failed, so the release manager can act on it")
    if submitted.decision == PROBLEM and not comment:
        raise ValidationFailed("describe the problem you found")
    if asked == "url" and (evidence or submitted.decision == PASS):
        check_evidence_url(evidence)
    if asked == "text" and submitted.decision == PASS and not evidence:
        raise ValidationFailed("this item needs evidence: describe what you checked")
    confirmed = tuple(sorted(set(submitted.scenarios_confirmed)))
    if submitted.kind == KEY_USER:
        if any(i < 0 or i >= scenarios for i in confirmed):
            raise ValidationFailed("confirmed scenarios must be among the listed scenarios")
        if submitted.decision == CONFIRMED and len(confirmed) != scenarios:
            raise ValidationFailed("confirm every scenario, or report a problem instead")
    elif confirmed:
        raise ValidationFailed("scenarios are confirmed by key users only")
    return Decision(submitted.kind, submitted.decision, comment, evidence, confirmed)


def check_evidence_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValidationFailed("evidence must be an http(s) link to what you checked")


def technical_signers(checklist: Checklist) -> frozenset[str]:
    return frozenset(signer for _, item in checklist.items() for signer in item.signers)


def eligible_signers(
    checklist: Checklist, *, kind: str, item: Item | None, assembler: str
) -> tuple[str, ...]:
    """Who may sign a requirement in their own name: an item's signers, or the key users who
    sign no technical item; never the assembler."""
    if kind == ITEM:
        listed = item.signers if item is not None else ()
    else:
        engineers = technical_signers(checklist)
        listed = tuple(k for k in checklist.user_validation.emails if k not in engineers)
    return tuple(p for p in listed if p != assembler)


def barred_deputies(checklist: Checklist, kind: str) -> frozenset[str]:
    """Who may never stand in for anyone in a requirement of this kind: separation of duties
    holds for deputies too, so nobody signs both a technical item and the key-user validation
    of one application, in their own name or another's."""
    engineers = technical_signers(checklist)
    if kind == ITEM:
        return frozenset(k for k in checklist.user_validation.emails if k not in engineers)
    return engineers | {d for p in engineers for d in checklist.deputies_of(p)}


def stand_ins(
    checklist: Checklist,
    *,
    person: str,
    assembler: str,
    barred: frozenset[str],
    eligible: tuple[str, ...],
) -> tuple[str, ...]:
    """The deputies who may take `person`'s place in one requirement. A deputy never counts
    twice: one who may sign the requirement in their own name cannot fill another's place."""
    return tuple(
        d
        for d in checklist.deputies_of(person)
        if d != assembler and d not in barred and d not in eligible
    )


def check_may_sign(
    *,
    signer: str,
    kind: str,
    assembler: str,
    checklist: Checklist,
    item: Item | None,
    on_behalf_of: str | None = None,
) -> None:
    """Separation of duties, applied when a request is created and again when it is used; a
    deputy signing `on_behalf_of` someone must be one of their stand-ins for this requirement."""
    if on_behalf_of is not None:
        check_may_sign(
            signer=on_behalf_of, kind=kind, assembler=assembler, checklist=checklist, item=item
        )
        eligible = eligible_signers(checklist, kind=kind, item=item, assembler=assembler)
        barred = barred_deputies(checklist, kind)
        if signer not in stand_ins(
            checklist, person=on_behalf_of, assembler=assembler, barred=barred, eligible=eligible
        ):
            raise PermissionDenied(f"{signer} may not sign for {on_behalf_of} here")
        return
    if signer == assembler:
        raise PermissionDenied("the release manager who assembled a package cannot sign off in it")
    if kind == ITEM:
        if item is None or signer not in item.signers:
            raise PermissionDenied(f"{signer} is not a signer of this item")
        return
    if signer not in checklist.user_validation.emails:
        raise PermissionDenied(
            f"only the named key users of {checklist.application} can validate it"
        )
    if signer in technical_signers(checklist):
        raise PermissionDenied(
            f"{signer} signs technical items of {checklist.application}, so cannot also be "
            "the key user validating it"
        )
