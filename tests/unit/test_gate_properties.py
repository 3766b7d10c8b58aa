"""Properties of the gate on random packages, checked against a small independent oracle.

The oracle below re-states the rules of DESIGN.md ("The gate") from scratch; it does not call
anything of gatekeeper.domain.gate except `evaluate` itself, the value types and the code names.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from gatekeeper.domain import gate
from gatekeeper.domain.checklist import (
    Checklist,
    Governance,
    Item,
    KeyUser,
    Quorum,
    Section,
    UserValidation,
)
from gatekeeper.domain.gate import GateInput, PinnedApplication, SignoffRecord, evaluate

ENGINEERS = ("ana@x.test", "raj@x.test", "sec@x.test", "tom@x.test")
KEY_USERS = ("dana@x.test", "lee@x.test", "eve@x.test")
POOL = (*ENGINEERS, *KEY_USERS)
ASSEMBLER = "rm@x.test"
OUTSIDER = "mallory@x.test"
APPS = ("billing", "ledger", "payments")
NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
REQUESTED = NOW - timedelta(days=3)
ITEM_DECISIONS = ("pass", "fail", "not_applicable")
USER_DECISIONS = ("confirmed", "problem")
GOOD = {"pass", "not_applicable", "confirmed"}
BAD = {"fail", "problem"}
WAITING = {"PACKAGE_NOT_SUBMITTED", "ITEM_PENDING", "USER_VALIDATION_PENDING"}

SETTINGS = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


# Generating packages --------------------------------------------------------------------------
#
# Hypothesis draws the shape (applications, sections, items, signers, quorums, revisions). The
# many small weighted choices (rare mishaps, who signs, noise) come from a Random seeded by
# hypothesis: hypothesis' own draws favour boundary values, which would make "rare" the norm,
# and drawing each one would make generation slow.


class Dice:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)  # noqa: S311 - test data, not secrets

    def one_in(self, n: int) -> bool:
        return self.rng.randrange(n) == 0


def quorum_for(draw: st.DrawFn, listed: int) -> Quorum:
    return draw(st.one_of(st.just("all"), st.integers(1, listed)))


def people(
    draw: st.DrawFn, dice: Dice, usual: tuple[str, ...], unusual: tuple[str, ...], odds: int
) -> tuple[str, ...]:
    """Mostly from the usual pool; one time in `odds` also someone from the other one (an
    engineer who is also a key user, a key user listed on a technical item)."""
    chosen = draw(st.lists(st.sampled_from(usual), min_size=1, max_size=3, unique=True))
    if odds and dice.one_in(odds):
        extra = dice.rng.choice(unusual)
        chosen.append(extra)
    return tuple(dict.fromkeys(chosen))


def checklist(draw: st.DrawFn, dice: Dice, application: str, tidy: bool) -> Checklist:
    sections = []
    for s in range(draw(st.integers(1, 3))):
        items = []
        for i in range(draw(st.integers(1, 4))):
            signers = people(draw, dice, ENGINEERS, KEY_USERS, 0 if tidy else 60)
            items.append(Item(f"i{i}", "text", signers, quorum=quorum_for(draw, len(signers))))
        sections.append(Section(f"s{s}", "title", tuple(items)))
    key_users = people(draw, dice, KEY_USERS, ENGINEERS, 0 if tidy else 12)
    return Checklist(
        application=application,
        title=application,
        version=draw(st.integers(1, 3)),
        owner="owner@x.test",
        governance=Governance(90, ("board@x.test",)),
        sections=tuple(sections),
        user_validation=UserValidation(
            tuple(KeyUser(u, u) for u in key_users), ("scenario",), quorum_for(draw, len(key_users))
        ),
    )


def application(
    draw: st.DrawFn, dice: Dice, name: str, revision: int, tidy: bool
) -> PinnedApplication:
    cl = None if not tidy and dice.one_in(30) else checklist(draw, dice, name, tidy)
    due = None
    if not tidy and dice.one_in(6):
        due = dice.rng.choice([NOW + timedelta(microseconds=1), NOW, NOW - timedelta(days=1)])
    return PinnedApplication(
        application=name,
        version_label=dice.rng.choice(["1.0", "1.1"]),
        checklist=cl,
        checklist_sha256=None if cl is None else "0" * 64,
        checklist_approved=tidy or not dice.one_in(30),
        review_due_at=due,
        reviewers=("board@x.test",),
        changed_in_revision=draw(st.integers(1, revision)),
        requested_at=REQUESTED,
    )


@st.composite
def gate_inputs(draw: st.DrawFn, *, tidy: bool = False) -> GateInput:
    """A random package; `tidy` ones are submitted, governed, fully signed and free of noise."""
    dice = Dice(draw(st.integers(0, 2**32)))
    revision = draw(st.integers(1, 3))
    names = draw(st.lists(st.sampled_from(APPS), min_size=1, max_size=3, unique=True))
    if not tidy and dice.one_in(40):
        names = []
    apps = tuple(application(draw, dice, name, revision, tidy) for name in names)
    assembler = ASSEMBLER if tidy or not dice.one_in(5) else dice.rng.choice(POOL)
    ids = iter(range(1, 10_000))
    times = [REQUESTED + timedelta(hours=h) for h in range(4)]
    records: list[SignoffRecord] = []
    # Diligent signers: most listed people sign positively at a revision that counts (the
    # current one, or carried forward from an earlier one), so that open gates are common.
    # Now and then one of them fails an item or reports a problem.
    diligence = 1.0 if tidy else dice.rng.choice([0.0, 0.8, 0.95, 1.0, 1.0, 1.0])
    grumpiness = 0.0 if tidy else dice.rng.choice([0.0, 0.0, 0.0, 0.03])

    def diligent(app: PinnedApplication, kind: str, signer: str, **kw: str) -> SignoffRecord:
        if dice.rng.random() < grumpiness:
            decision = "fail" if kind == "item" else "problem"
        elif kind == "item":
            decision = dice.rng.choice(("pass", "pass", "not_applicable"))
        else:
            decision = "confirmed"
        return SignoffRecord(
            id=next(ids),
            application=app.application,
            kind=kind,
            signer=signer,
            decision=decision,
            revision=dice.rng.randint(app.changed_in_revision, revision),
            signed_at=dice.rng.choice(times),
            **kw,
        )

    for app in apps:
        if app.checklist is None:
            continue
        for section, item in app.checklist.items():
            for signer in item.signers:
                if dice.rng.random() < diligence:
                    kw = {"section_id": section.id, "item_id": item.id}
                    records.append(diligent(app, "item", signer, **kw))
        for user in app.checklist.user_validation.emails:
            if dice.rng.random() < diligence:
                records.append(diligent(app, "key_user", user))
    # Noise: anyone, anything, any revision (stale and future ones too), other applications,
    # unknown items, and the wrong kind of record.
    for _ in range(0 if tidy else dice.rng.choice([0, 0, 0, 1, 2, 6])):
        kind = dice.rng.choice(["item", "key_user"])
        kw = {}
        if kind == "item":
            kw = {
                "section_id": dice.rng.choice(["s0", "s1", "s2", "zz"]),
                "item_id": dice.rng.choice(["i0", "i1", "i2", "i3", "zz"]),
            }
        records.append(
            SignoffRecord(
                id=next(ids),
                application=dice.rng.choice([*names, "elsewhere"]),
                kind=kind,
                signer=dice.rng.choice([*POOL, OUTSIDER, assembler]),
                decision=dice.rng.choice(ITEM_DECISIONS if kind == "item" else USER_DECISIONS),
                revision=dice.rng.randint(0, revision + 1),
                signed_at=dice.rng.choice(times),
                comment="why",
                **kw,
            )
        )
    dice.rng.shuffle(records)
    state = "in_review"
    if not tidy and dice.one_in(4):
        state = dice.rng.choice(["draft", "cancelled", "released"])
    return GateInput(
        package="pkg-1",
        revision=revision,
        state=state,
        assembler=assembler,
        applications=apps,
        signoffs=tuple(records),
        now=NOW,
        overdue_policy=dice.rng.choice(["block", "warn"]),
    )


# The oracle -----------------------------------------------------------------------------------


@dataclass
class Requirement:
    needed: int
    eligible: int
    good: int
    bad: int
    carried: int
    undecided: int

    @property
    def satisfied(self) -> bool:
        return self.good >= self.needed

    @property
    def unreachable(self) -> bool:
        return not self.satisfied and self.eligible < self.needed


@dataclass
class Expected:
    status: str
    signed: int
    required: int
    carried: dict[str, int]
    requirements: list[Requirement]


def requirement(
    gi: GateInput,
    app: PinnedApplication,
    listed: tuple[str, ...],
    excluded: set[str],
    quorum: Quorum,
    belongs: object,
) -> Requirement:
    eligible = {p for p in listed if p not in excluded}
    latest: dict[str, SignoffRecord] = {}
    for r in gi.signoffs:
        if r.application != app.application or not belongs(r) or r.signer not in eligible:
            continue
        if not app.changed_in_revision <= r.revision <= gi.revision:
            continue  # stale, or from a revision not evaluated
        if r.signer not in latest or (r.signed_at, r.id) > (
            latest[r.signer].signed_at,
            latest[r.signer].id,
        ):
            latest[r.signer] = r
    needed = len(listed) if quorum == "all" else quorum
    good = [r for r in latest.values() if r.decision in GOOD]
    return Requirement(
        needed=needed,
        eligible=len(eligible),
        good=len(good),
        bad=sum(r.decision in BAD for r in latest.values()),
        carried=min(needed, sum(r.revision < gi.revision for r in good)),
        undecided=len(eligible - set(latest)),
    )


def oracle(gi: GateInput) -> Expected:
    blocked = gi.state == "cancelled" or not gi.applications
    reqs: list[Requirement] = []
    carried: dict[str, int] = {}
    # A draft has pinned nothing yet: only "submit it" (or "it is empty") is reported.
    for app in () if gi.state == "draft" else gi.applications:
        cl = app.checklist
        if cl is None:
            blocked = True
            carried[app.application] = 0
            continue
        if not app.checklist_approved:
            blocked = True
        if app.review_due_at is not None and gi.now >= app.review_due_at:
            # A review falling due after the release does not un-release it.
            blocked |= gi.overdue_policy == "block" and gi.state != "released"
        app_reqs = []
        for section, it in cl.items():
            app_reqs.append(
                requirement(
                    gi,
                    app,
                    it.signers,
                    {gi.assembler},
                    it.quorum,
                    lambda r, s=section.id, i=it.id: (
                        r.kind == "item" and (r.section_id, r.item_id) == (s, i)
                    ),
                )
            )
        engineers = {p for _, it in cl.items() for p in it.signers}
        app_reqs.append(
            requirement(
                gi,
                app,
                cl.user_validation.emails,
                {gi.assembler} | engineers,
                cl.user_validation.quorum,
                lambda r: r.kind == "key_user",
            )
        )
        carried[app.application] = sum(r.carried for r in app_reqs)
        reqs.extend(app_reqs)
    if any(r.bad or r.unreachable for r in reqs):
        blocked = True
    if blocked:
        status = gate.BLOCKED
    elif gi.state == "draft" or not all(r.satisfied for r in reqs):
        status = gate.PENDING
    else:
        status = gate.OPEN
    return Expected(
        status=status,
        signed=sum(min(r.good, r.needed) for r in reqs),
        required=sum(r.needed for r in reqs),
        carried=carried,
        requirements=reqs,
    )


# Properties -----------------------------------------------------------------------------------


def check_invariants(gi: GateInput) -> None:
    result = evaluate(gi)
    expected = oracle(gi)
    # The exact answer, computed independently.
    assert result.status == expected.status
    assert (result.signed, result.required) == (expected.signed, expected.required)
    assert {a.application: a.carried_forward for a in result.applications} == expected.carried
    assert result.signed <= result.required
    # Never open while anything is missing, failed, stale, ineligible or ungoverned.
    if result.status == gate.OPEN:
        assert gi.state in ("in_review", "released")
        assert gi.applications
        for app in gi.applications:
            assert app.checklist is not None
            assert app.checklist_approved
            overdue = app.review_due_at is not None and gi.now >= app.review_due_at
            assert not overdue or gi.overdue_policy == "warn" or gi.state == "released"
        assert all(req.satisfied and not req.bad for req in expected.requirements)
        assert result.signed == result.required
    # Statuses and blockers: no blocker is silent, pending only ever waits on people.
    assert (result.status == gate.OPEN) == (not result.blockers)
    assert (result.status == gate.BLOCKED) == any(
        b.code in gate.BLOCKING_CODES for b in result.blockers
    )
    if result.status == gate.PENDING:
        assert all(b.code in WAITING for b in result.blockers)
    names = {a.application for a in gi.applications}
    for b in (*result.blockers, *result.warnings):
        assert b.message
        assert b.code in (*gate.BLOCKING_CODES, *gate.WAITING_CODES)
        assert b.application is None or b.application in names
        if b.code.endswith("_PENDING"):
            assert b.waiting_on
            assert b.application in names
            assert gi.assembler not in b.waiting_on
            assert all(p in b.message for p in b.waiting_on)
        if b.code in (gate.ITEM_FAILED, gate.USER_PROBLEM_REPORTED):
            assert b.message.split()[0] in POOL  # names who reported it
    assert all(w.code == gate.REVIEW_OVERDUE for w in result.warnings)
    if gi.overdue_policy == "block" and gi.state != "released":
        assert result.warnings == ()
    event(f"status: {result.status}")


@SETTINGS
@given(gate_inputs())
def test_the_gate_agrees_with_the_oracle_and_keeps_its_invariants(gi: GateInput) -> None:
    check_invariants(gi)


@SETTINGS
@given(gate_inputs(), st.integers(0, 2**32))
def test_evaluation_is_deterministic_and_order_independent(gi: GateInput, seed: int) -> None:
    rnd = Dice(seed).rng
    first = evaluate(gi)
    assert evaluate(gi) == first
    signoffs, apps = list(gi.signoffs), list(gi.applications)
    rnd.shuffle(signoffs)
    rnd.shuffle(apps)
    shuffled = evaluate(replace(gi, signoffs=tuple(signoffs), applications=tuple(apps)))
    assert shuffled.to_dict() == first.to_dict()
    assert shuffled.digest == first.digest
    assert shuffled.counted == first.counted
    # Only counted sign-offs move the digest: dropping the others changes nothing, dropping a
    # counted one changes it.
    counted = set(first.counted)
    kept = tuple(r for r in gi.signoffs if r.id in counted)
    pruned = evaluate(replace(gi, signoffs=kept))
    assert (pruned.status, pruned.digest, pruned.counted) == (
        first.status,
        first.digest,
        first.counted,
    )
    if kept:
        assert evaluate(replace(gi, signoffs=kept[1:])).digest != first.digest


MUTATIONS = ("remove", "stale", "future", "outsider", "assembler", "other item", "kind", "fail")


@settings(SETTINGS, max_examples=200)
@given(gate_inputs(tidy=True), st.data())
def test_spoiling_a_sign_off_of_an_open_gate(gi: GateInput, data: st.DataObject) -> None:
    """Near misses: one counted sign-off of an open gate is removed, made stale, moved to a
    revision not yet evaluated, signed by someone ineligible, moved to another requirement, or
    turned negative. The gate must then agree with the oracle (and so is never open while a
    requirement is short), and a negative decision always blocks."""
    before = evaluate(gi)
    assume(before.status == gate.OPEN and before.counted)
    victim_id = data.draw(st.sampled_from(before.counted), label="victim")
    victim = next(r for r in gi.signoffs if r.id == victim_id)
    app = next(a for a in gi.applications if a.application == victim.application)
    how = data.draw(st.sampled_from(MUTATIONS), label="mutation")
    others = tuple(r for r in gi.signoffs if r.id != victim_id)
    spoiled: SignoffRecord | None = {
        "remove": None,
        "stale": replace(victim, revision=app.changed_in_revision - 1),
        "future": replace(victim, revision=gi.revision + 1),
        "outsider": replace(victim, signer=OUTSIDER),
        "assembler": victim,
        "other item": replace(victim, item_id="zz"),
        "kind": replace(victim, kind="key_user" if victim.kind == "item" else "item"),
        "fail": replace(victim, decision="fail" if victim.kind == "item" else "problem"),
    }[how]
    mutated = replace(
        gi,
        signoffs=others if spoiled is None else (*others, spoiled),
        assembler=victim.signer if how == "assembler" else gi.assembler,
    )
    check_invariants(mutated)
    after = evaluate(mutated)
    if how == "fail":
        assert after.status == gate.BLOCKED
    else:
        assert after.signed <= before.signed
    if after.signed < after.required:
        assert after.status != gate.OPEN
