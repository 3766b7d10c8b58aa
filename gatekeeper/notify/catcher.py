"""The demo's mail catcher: a real SMTP server on loopback that keeps messages in memory."""

from __future__ import annotations

import email
import email.policy
import threading
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller

from gatekeeper.domain.clock import SystemClock


@dataclass(frozen=True)
class CaughtMessage:
    number: int
    received_at: datetime
    sender: str
    recipients: tuple[str, ...]
    subject: str
    text: str
    html: str


class _Handler:
    def __init__(self, box: MailCatcher) -> None:
        self.box = box

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.box.add(envelope.mail_from, tuple(envelope.rcpt_tos), envelope.content)
        return "250 Message accepted for delivery"


class MailCatcher:
    """Catches every message sent to it; the demo's mailbox page reads them."""

    def __init__(self, host: str = "127.0.0.1", port: int = 8025, limit: int = 500) -> None:
        self._messages: list[CaughtMessage] = []
        self._lock = threading.Lock()
        self._limit = limit
        self._controller = Controller(_Handler(self), hostname=host, port=port)

    @property
    def port(self) -> int:
        port: int = self._controller.port
        return port

    def start(self) -> None:
        self._controller.start()

    def stop(self) -> None:
        self._controller.stop()

    def add(self, sender: str, recipients: tuple[str, ...], content: bytes) -> None:
        parsed = email.message_from_bytes(content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        text_part = parsed.get_body(preferencelist=("plain",))
        html_part = parsed.get_body(preferencelist=("html",))
        with self._lock:
            self._messages.append(
                CaughtMessage(
                    number=len(self._messages) + 1,
                    received_at=SystemClock().now(),
                    sender=sender,
                    recipients=recipients,
                    subject=str(parsed["subject"] or ""),
                    text=text_part.get_content() if text_part is not None else "",
                    html=html_part.get_content() if html_part is not None else "",
                )
            )
            del self._messages[: -self._limit]

    def messages(self) -> list[CaughtMessage]:
        with self._lock:
            return list(reversed(self._messages))
