"""A local SMTP server for the outbox benchmark: aiosmtpd on loopback, counting what it accepts.

Run by bench.outbox in its own process (a mail relay is another program, not a thread of the
sender): `python -m bench._smtp_sink PORT`. It prints `ready` once listening and, on SIGTERM,
the number of messages and recipients it accepted, then exits.
"""

from __future__ import annotations

import signal
import sys
import threading
from typing import Any

from aiosmtpd.controller import Controller


class Counter:
    def __init__(self) -> None:
        self.messages = 0
        self.recipients = 0
        self.bytes = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages += 1
        self.recipients += len(envelope.rcpt_tos)
        self.bytes += len(envelope.content or b"")
        return "250 Message accepted for delivery"


def main() -> None:
    port = int(sys.argv[1])
    counter = Counter()
    controller = Controller(counter, hostname="127.0.0.1", port=port)
    controller.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print("ready", flush=True)
    stop.wait()
    controller.stop()
    print(f"{counter.messages} {counter.recipients} {counter.bytes}", flush=True)


if __name__ == "__main__":
    main()
