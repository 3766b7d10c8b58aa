"""The outbox worker against plain smtplib: the same messages to the same local SMTP server.

Run:  python -m bench.outbox                 (defaults: 2,000 messages, 3 rounds, both engines)
      python -m bench.outbox --engines sqlite --messages 5000 --rounds 5

For each engine it queues --messages sign-off request emails through the product's outbox
writer (`queue_email`, rendered from the real templates, one recipient each), and starts an
aiosmtpd server in its own process on loopback. Then, round after round:

* worker, per engine: `gatekeeper worker` passes in process (claim a batch of rows, send it over
  one SMTP connection with Flask-Mail, record every outcome) until the outbox is empty;
* smtplib: plain `smtplib.SMTP` over one connection, composing each message with the standard
  library's `email.mime` classes (text and HTML alternatives, as the worker sends) and
  `send_message`: the baseline of target (5);
* raw (first round only): for reference, smtplib `sendmail` of pre-built bytes, the SMTP
  transfer alone.

Between rounds the same rows are queued again. Target (5): worker messages per second >= 0.5x
plain smtplib's, medians of the rounds. It also times building the bytes of one message four
ways: Flask-Mail's `Message` rendered as the worker does (`OutboxMail.render`, compat32 on the
wire), the same `Message` through Flask-Mail's own `as_bytes` (`email.policy.SMTP`, what the
worker did before), `EmailMessage`, and `email.mime`; building was most of the worker's time.
"""

from __future__ import annotations

import argparse
import smtplib
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import timedelta
from email import policy
from email.header import Header
from email.message import EmailMessage
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import formatdate, make_msgid
from pathlib import Path

import sqlalchemy as sa
from flask import Flask
from flask_mail import Message

from bench._harness import (
    PG_ADMIN_URL,
    Stopwatch,
    create_postgres,
    dispose,
    free_port,
    make_app,
    median,
    migrate,
    postgres_available,
    postgres_databases,
    table,
    verdict,
)

TARGET = 0.5
SENDER = "Gatekeeper <gatekeeper@bench.example>"


@dataclass
class Results:
    seconds: dict[str, list[float]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    composition: dict[str, float] = field(default_factory=dict)

    def add(self, label: str, seconds: float) -> None:
        self.seconds.setdefault(label, []).append(seconds)

    def rate(self, label: str, messages: int) -> float:
        return messages / median(self.seconds[label])


class Sink:
    """bench._smtp_sink in its own process."""

    def __init__(self) -> None:
        self.port = free_port()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench._smtp_sink", str(self.port)],
            stdout=subprocess.PIPE,
            text=True,
            cwd=Path(__file__).resolve().parent.parent,
        )
        assert self.process.stdout is not None
        if self.process.stdout.readline().strip() != "ready":
            raise RuntimeError("the SMTP sink did not start")

    def stop(self) -> int:
        self.process.terminate()
        out, _ = self.process.communicate(timeout=20)
        return int(out.split()[0]) if out.strip() else 0


def queue_messages(app: Flask, count: int) -> None:
    """`count` sign-off request emails through the outbox writer, for one real package."""
    from gatekeeper.db.base import db
    from gatekeeper.db.unit_of_work import unit_of_work
    from gatekeeper.notify.outbox import queue_email
    from gatekeeper.runtime import runtime
    from gatekeeper.services import packages

    rt = runtime(app)
    with app.app_context(), unit_of_work(db.session) as session:
        now = rt.clock.now()
        package = packages.create_package(
            session,
            packages.PackageSpec("bench-mail", "Release day", "production", None, ()),
            assembler="release-manager@example.com",
            clock=rt.clock,
        )
        package.revision = 1
        for index in range(count):
            groups = [
                {
                    "application": f"app-{a:02d}",
                    "version": "1.0.0",
                    "change_summary": f"app-{a:02d}: routine release",
                    "lines": [
                        f"Section {s}: Technical item {s * 10} of app-{a:02d} was checked"
                        for s in range(3)
                    ],
                }
                for a in (index % 20, (index + 7) % 20)
            ]
            queue_email(
                session,
                to=f"signer-{index:05d}@example.com",
                template="signoff_request",
                context={
                    "package": package,
                    "groups": groups,
                    "url": f"{rt.settings.base_url}/s/eyJsIjo{index:05d}.bench-token-{index}",
                    "expires_at": "2026-11-30 09:00 UTC",
                    "reminder": False,
                },
                now=now,
            )


def payloads(app: Flask) -> list[tuple[str, str, str, str]]:
    from gatekeeper.db.base import db
    from gatekeeper.db.models import OutboxMessage

    with app.app_context():
        rows = db.session.execute(
            sa.select(
                OutboxMessage.to_address,
                OutboxMessage.subject,
                OutboxMessage.body_text,
                OutboxMessage.body_html,
            ).order_by(OutboxMessage.id)
        ).all()
        db.session.remove()
    return [tuple(r) for r in rows]


def requeue(app: Flask) -> None:
    from gatekeeper.db.base import db
    from gatekeeper.db.models import OutboxMessage
    from gatekeeper.db.unit_of_work import unit_of_work
    from gatekeeper.runtime import runtime

    now = runtime(app).clock.now()
    with app.app_context(), unit_of_work(db.session) as session:
        session.execute(
            sa.update(OutboxMessage).values(
                state="queued",
                attempts=0,
                sent_at=None,
                claimed_by=None,
                claimed_at=None,
                last_error="",
                next_attempt_at=now - timedelta(seconds=1),
            )
        )


def run_worker(app: Flask, expected: int) -> float:
    """Worker passes, exactly as `gatekeeper worker` runs them, until every message is sent."""
    # The CLI's own pass function, so the benchmark follows whatever the command does.
    from gatekeeper.cli.worker import worker_pass

    sent = 0
    start = time.perf_counter()
    while sent < expected:
        report = worker_pass(app, "bench")
        if report.delivery.errors:
            raise RuntimeError(f"worker errors: {report.delivery.errors[:3]}")
        if report.delivery.sent == 0:
            raise RuntimeError(f"worker stalled after {sent} of {expected} messages")
        sent += report.delivery.sent
    return time.perf_counter() - start


def compose(to: str, subject: str, text: str, html: str) -> MIMEMultipart:
    """The message as plain standard-library code builds it: text and HTML alternatives."""
    message = MIMEMultipart("alternative")
    message["From"] = SENDER
    message["To"] = to
    message["Subject"] = Header(subject, "utf-8")
    message["Date"] = formatdate()
    message["Message-ID"] = make_msgid(domain="bench.example")
    message.attach(MIMEText(text, "plain", "utf-8"))
    message.attach(MIMEText(html, "html", "utf-8"))
    return message


def run_smtplib(port: int, messages: list[tuple[str, str, str, str]]) -> float:
    start = time.perf_counter()
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
        for to, subject, text, html in messages:
            smtp.send_message(compose(to, subject, text, html))
    return time.perf_counter() - start


def prebuilt(messages: list[tuple[str, str, str, str]]) -> list[tuple[str, bytes]]:
    crlf = policy.compat32.clone(linesep="\r\n")
    return [(m[0], compose(*m).as_bytes(policy=crlf)) for m in messages]


def composition(app: Flask, messages: list[tuple[str, str, str, str]]) -> dict[str, float]:
    """Milliseconds per message to build the bytes, four ways, on the same content."""
    from gatekeeper.notify import worker

    crlf = policy.compat32.clone(linesep="\r\n")

    def outbox_mail(to: str, subject: str, text: str, html: str) -> bytes:
        # What the worker sends: Flask-Mail's Message, rendered under the worker's wire policy.
        return worker.OutboxMail(
            subject=subject, recipients=[to], body=text, html=html, sender=SENDER
        ).render()

    def flask_mail(to: str, subject: str, text: str, html: str) -> bytes:
        # Flask-Mail's own serialisation (email.policy.SMTP), which the worker used before.
        return Message(
            subject=subject, recipients=[to], body=text, html=html, sender=SENDER
        ).as_bytes()

    def email_message(to: str, subject: str, text: str, html: str) -> bytes:
        message = EmailMessage()
        message["From"], message["To"], message["Subject"] = SENDER, to, subject
        message.set_content(text)
        message.add_alternative(html, subtype="html")
        return message.as_bytes(policy=message.policy.clone(linesep="\r\n"))

    def stdlib_mime(to: str, subject: str, text: str, html: str) -> bytes:
        return compose(to, subject, text, html).as_bytes(policy=crlf)

    assert issubclass(worker.OutboxMail, Message), "the worker no longer composes with Flask-Mail"
    timings = {}
    with app.app_context():
        for label, build in (
            ("Flask-Mail Message, wire policy (the worker)", outbox_mail),
            ("Flask-Mail Message.as_bytes (policy.SMTP)", flask_mail),
            ("email.message.EmailMessage", email_message),
            ("email.mime, compat32 (the smtplib baseline)", stdlib_mime),
        ):
            start = time.perf_counter()
            for message in messages:
                build(*message)
            timings[label] = (time.perf_counter() - start) / len(messages) * 1000
    return timings


def run_raw(port: int, built: list[tuple[str, bytes]]) -> float:
    start = time.perf_counter()
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
        for to, data in built:
            smtp.sendmail("gatekeeper@bench.example", [to], data)
    return time.perf_counter() - start


def prepare(
    engine: str, work: Path, sink_port: int, args: argparse.Namespace, created: list[str]
) -> Flask:
    if engine == "sqlite":
        url = f"sqlite:///{work / 'outbox.sqlite'}"
    else:
        created.append("gatekeeper_bench_outbox")
        url = create_postgres(args.pg_admin_url, "gatekeeper_bench_outbox")
    app = make_app(
        url,
        work / f"instance-{engine}",
        GATEKEEPER_MAIL_SERVER="127.0.0.1",
        GATEKEEPER_MAIL_PORT=str(sink_port),
        GATEKEEPER_MAIL_SENDER=SENDER,
    )
    migrate(app)
    queue_messages(app, args.messages)
    return app


def measure(engines: list[str], args: argparse.Namespace, log: Stopwatch) -> Results:
    results = Results()
    sink = Sink()
    runs = 0
    try:
        with (
            tempfile.TemporaryDirectory(prefix="gk-bench-outbox-") as tmp,
            postgres_databases(args.pg_admin_url) as created,
        ):
            work = Path(tmp)
            apps = {}
            for engine in engines:
                apps[engine] = prepare(engine, work, sink.port, args, created)
                log(f"{engine}: {args.messages} messages queued through the outbox writer")
            messages = payloads(next(iter(apps.values())))
            built = prebuilt(messages)
            results.composition = composition(
                next(iter(apps.values())), messages[: args.compose_sample]
            )
            log(f"SMTP server (aiosmtpd, own process) on 127.0.0.1:{sink.port}")
            for round_number in range(1, args.rounds + 1):
                timings = {}
                for engine, app in apps.items():
                    if round_number > 1:
                        requeue(app)
                    timings[f"worker {engine}"] = run_worker(app, args.messages)
                timings["smtplib"] = run_smtplib(sink.port, messages)
                if round_number == 1:
                    # Reference only: the transfer alone hardly varies, once is enough.
                    timings["raw"] = run_raw(sink.port, built)
                runs += len(timings)
                for label, seconds in timings.items():
                    results.add(label, seconds)
                log(
                    f"  round {round_number}: "
                    + ", ".join(f"{label} {seconds:.2f} s" for label, seconds in timings.items())
                )
            for app in apps.values():
                dispose(app)
    finally:
        accepted = sink.stop()
    if accepted != args.messages * runs:
        results.errors.append(
            f"the SMTP server accepted {accepted} of {args.messages * runs} messages"
        )
    return results


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--compose-sample", type=int, default=300, help="messages for the composition timing"
    )
    parser.add_argument("--engines", default="sqlite,postgresql")
    parser.add_argument("--pg-admin-url", default=PG_ADMIN_URL)
    args = parser.parse_args()
    log = Stopwatch()
    engines = []
    for engine in [e.strip() for e in args.engines.split(",") if e.strip()]:
        if engine not in ("sqlite", "postgresql"):
            parser.error(f"unknown engine {engine!r}")
        if engine == "postgresql" and (why := postgres_available(args.pg_admin_url)):
            print(f"postgresql: skipped, server not reachable ({why})", file=sys.stderr)
            continue
        engines.append(engine)
    results = measure(engines, args, log)
    n = args.messages
    print()
    print(f"{n} messages per run, {args.rounds} rounds alternating; medians of the rounds")
    rows = []
    labels = [(f"worker {e}", f"outbox worker on {e} (claim, Flask-Mail, record)") for e in engines]
    labels += [
        ("smtplib", "plain smtplib: email.mime + send_message"),
        ("raw", "plain smtplib: pre-built bytes (transfer only)"),
    ]
    for label, what in labels:
        rows.append(
            [what, f"{median(results.seconds[label]):.2f}", f"{results.rate(label, n):.0f}"]
        )
    print(table(["sender, one SMTP connection per batch/run", "seconds", "messages/s"], rows))
    print()
    rows = []
    for engine in engines:
        worker = results.rate(f"worker {engine}", n)
        ratio = worker / results.rate("smtplib", n)
        rows.append(
            [
                f"(5) {engine}: worker / plain smtplib",
                f"{ratio:.2f}x",
                f">= {TARGET}x",
                verdict(ratio >= TARGET),
            ]
        )
        raw = worker / results.rate("raw", n)
        rows.append([f"    {engine}: worker / transfer only", f"{raw:.2f}x", "(info)", ""])
    print(table(["target", "measured", "target", "verdict"], rows))
    print()
    print(
        table(
            ["building one message's bytes (same content)", "ms/message"],
            [[label, f"{ms:.2f}"] for label, ms in results.composition.items()],
        )
    )
    log("done")
    for error in results.errors:
        print(f"error: {error}", file=sys.stderr)
    return 1 if results.errors else 0


if __name__ == "__main__":
    sys.exit(main())
