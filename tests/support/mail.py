"""Real SMTP on loopback for tests: aiosmtpd servers that accept, refuse, or hang."""

from __future__ import annotations

import re
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from aiosmtpd.controller import Controller
from flask import Flask
from sqlalchemy.orm import Session

from gatekeeper.db.base import db
from gatekeeper.db.models import OutboxMessage
from gatekeeper.db.unit_of_work import unit_of_work
from gatekeeper.domain.clock import Clock, FixedClock
from gatekeeper.notify.catcher import CaughtMessage, MailCatcher
from gatekeeper.notify.outbox import queue_email
from gatekeeper.notify.worker import mail
from gatekeeper.runtime import runtime
from gatekeeper.services.mail_worker import PassReport, worker_pass

LINK = re.compile(r"https?://[^\s<>\"']+/s/[A-Za-z0-9_\-.]+")
SIGNER = "signer@example.com"


@dataclass(frozen=True)
class Package:
    key: str
    title: str


def queue(
    clock: FixedClock, count: int, *, to: str = SIGNER, first: int = 0, title: str = "Refunds"
) -> list[int]:
    """Queue `count` link_expiring emails in one transaction; subject names `rel-<n>`."""
    with unit_of_work(db.session) as session:
        rows = [
            queue_email(
                session,
                to=to,
                template="link_expiring",
                context={
                    "package": Package(f"rel-{first + n}", title),
                    "expires_at": "x",
                    "resend_url": "http://x",
                },
                now=clock.now(),
            )
            for n in range(count)
        ]
        session.flush()
        return [row.id for row in rows]


# Every kind of emailed link: its route, then the token.
ANY_LINK = re.compile(
    r"https?://[^\s<>\"']+?/(review/findings|review|report|s|login|confirm)/[A-Za-z0-9_\-.]+"
)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def point_mail_at(app: Flask, port: int) -> None:
    app.config.update(MAIL_SERVER="127.0.0.1", MAIL_PORT=port)
    app.extensions["mail"] = mail.init_app(app)


def run_worker(app: Flask, *, timeout: float = 5.0, worker_id: str = "test") -> PassReport:
    """One real worker pass: reminders, then SMTP delivery of everything due."""
    rt = runtime(app)
    return worker_pass(
        db.session,
        mail_state=app.extensions["mail"],
        worker_id=worker_id,
        clock=rt.clock,
        timeout=timeout,
        sender=rt.settings.mail_sender,
        links=rt.link_settings(),
        governance=rt.governance_settings(),
        hooks=rt.webhook_settings(),
        gate=rt.deployment_gate_settings(),
        calls=rt.platform_settings(),
    )


@contextmanager
def catcher() -> Iterator[MailCatcher]:
    box = MailCatcher(port=free_port())
    box.start()
    try:
        yield box
    finally:
        box.stop()


class _Replying:
    """Answers DATA with a fixed SMTP reply (e.g. 451 or 550)."""

    def __init__(self, reply: str) -> None:
        self.reply = reply
        self.attempts = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.attempts += 1
        return self.reply


@contextmanager
def smtp_server(handler: object) -> Iterator[int]:
    """An aiosmtpd server with `handler` on a free loopback port, for the block's duration."""
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port
    finally:
        controller.stop()


@contextmanager
def replying_server(reply: str) -> Iterator[tuple[int, _Replying]]:
    handler = _Replying(reply)
    with smtp_server(handler) as port:
        yield port, handler


def dead_letter(
    session: Session,
    clock: Clock,
    *,
    subject: str = "Sign-off needed",
    attempts: int = 1,
    last_error: str = "SMTP 550: no such user",
) -> OutboxMessage:
    """A sign-off request the worker gave up on, as the dead-letter page lists it."""
    message = OutboxMessage(
        template="signoff_request",
        to_address="bounced@example.com",
        subject=subject,
        body_text="x",
        body_html="x",
        state="dead",
        attempts=attempts,
        next_attempt_at=clock.now(),
        last_error=last_error,
        created_at=clock.now(),
    )
    session.add(message)
    session.flush()
    return message


@contextmanager
def hanging_server() -> Iterator[int]:
    """Accepts TCP connections and never says a word, like a wedged mail relay."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except OSError:
                continue
            held.append(connection)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(2)
        for connection in held:
            connection.close()
        listener.close()


def messages_to(box: MailCatcher, address: str) -> list[CaughtMessage]:
    return [m for m in box.messages() if address in m.recipients]


def link_in(message: CaughtMessage) -> str:
    found = LINK.search(message.text)
    assert found, message.text
    return found.group(0)


def link_to(box: MailCatcher, who: str, kind: str, about: str = "") -> str:
    """The path of the newest `kind` link (its route: s, review, ...) emailed to `who`, in a
    mail mentioning `about`."""
    found = [
        match.group(0)
        for message in messages_to(box, who)
        if about in message.text
        for match in ANY_LINK.finditer(message.text)
        if match.group(1) == kind
    ]
    assert found, f"no {kind} link emailed to {who}"
    # The catcher lists the newest message first.
    assert found[0].startswith("http://127.0.0.1:5000/"), "links come from the base URL"
    return urlsplit(found[0]).path
