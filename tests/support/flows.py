"""Shared workflow set-up for tests: a submitted package with its emailed tokens captured."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa
from flask import Flask
from sqlalchemy.orm import Session

from gatekeeper.db.base import db
from gatekeeper.db.models import OutboxMessage
from gatekeeper.db.unit_of_work import unit_of_work
from gatekeeper.domain.clock import FixedClock
from gatekeeper.domain.signoff import Decision
from gatekeeper.runtime import runtime
from gatekeeper.services import checklists, packages, signoffs
from tests.conftest import CHECKLIST_AUTHOR, SAMPLES

KEY = "2026.11-race"
MANAGER = "release-manager@example.com"


def approve_payments(session: Session, clock: FixedClock, folder: Path = SAMPLES) -> None:
    """The checklists of `folder` (the samples) synced, and payments-api's version 7 approved
    by its reviewer."""
    checklists.sync_checklists(session, folder, clock=clock, declared_authors=[CHECKLIST_AUTHOR])
    checklists.review_version(
        session,
        application="payments-api",
        version=7,
        action="approve",
        reviewer="release-board@example.com",
        consulted="the key users",
        clock=clock,
    )


def prepare(app: Flask, clock: FixedClock) -> dict[str, str]:
    """Submit a payments-api package; return each signer's token (captured from the links)."""
    captured: dict[str, str] = {}
    settings = runtime(app).link_settings()
    with unit_of_work(db.session) as session:
        approve_payments(session, clock)
        packages.create_package(
            session,
            packages.PackageSpec(
                KEY, "Race", "prod", None, (packages.ApplicationSpec("payments-api", "1"),)
            ),
            assembler=MANAGER,
            clock=clock,
        )
        signoffs.submit_for_signoff(session, KEY, actor=MANAGER, clock=clock, links=settings)
        requests = sa.select(OutboxMessage).where(OutboxMessage.template == "signoff_request")
        for message in session.scalars(requests):
            token = message.body_text.split("/s/", 1)[1].split()[0]
            captured[message.to_address] = token
    return captured


def decisions_for(app: Flask, token: str, clock: FixedClock) -> dict[int, Decision]:
    view = signoffs.open_link(db.session, token, settings=runtime(app).link_settings(), clock=clock)
    found: dict[int, Decision] = {}
    for item in view.requests:
        if item.item is not None:
            found[item.request.id] = Decision("item", "pass", evidence="https://e.example/1")
        else:
            scenarios = tuple(range(len(item.checklist.user_validation.scenarios)))
            found[item.request.id] = Decision(
                "key_user", "confirmed", scenarios_confirmed=scenarios
            )
    db.session.rollback()
    return found


def race(app: Flask, jobs: list[Callable[[], None]]) -> list[BaseException | None]:
    """Run each job in its own thread, app context and database connection, all at once."""
    barrier = threading.Barrier(len(jobs))
    results: list[BaseException | None] = [None] * len(jobs)

    def run(index: int, job: Callable[[], None]) -> None:
        with app.app_context():
            try:
                barrier.wait(10)
                job()
            except BaseException as exc:
                results[index] = exc
            finally:
                db.session.remove()

    threads = [threading.Thread(target=run, args=(i, job)) for i, job in enumerate(jobs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return results


def submit(app: Flask, token: str, decisions: dict[int, Decision], clock: FixedClock) -> None:
    with unit_of_work(db.session) as session:
        signoffs.submit_link(
            session, token, decisions, settings=runtime(app).link_settings(), clock=clock
        )
