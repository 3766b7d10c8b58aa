"""gunicorn settings for production, tokens masked in every log line it writes.

    gunicorn -c python:gatekeeper.gunicorn_config --bind 0.0.0.0:8000

Command-line flags and GUNICORN_CMD_ARGS override any setting here; WEB_CONCURRENCY sets the
number of worker processes.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from gunicorn.glogging import Logger

from gatekeeper.redaction import redact

wsgi_app = "gatekeeper.wsgi:app"

# Sync workers behind a reverse proxy (TLS, slow clients and keep-alive are the proxy's job).
# Each worker keeps its own gate and token caches, so a few processes per core are enough.
workers = int(os.environ.get("WEB_CONCURRENCY", 2 * (os.cpu_count() or 1) + 1))
# A request that takes longer than this is stuck (a gate check takes milliseconds): the worker
# is replaced. On SIGTERM, requests in flight get graceful_timeout to finish.
timeout = 30
graceful_timeout = 30
keepalive = 5

# Both logs on standard output/error for the service manager to collect; the access log in the
# combined format, with every emailed-link token masked (see RedactingLogger).
accesslog = "-"
errorlog = "-"
loglevel = "info"


class RedactingFilter(logging.Filter):
    """Masks tokens in a record before any handler writes it: the message (an access log line is
    one fully formatted message) and the traceback, if there is one."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "gatekeeper_redacted", False):
            record.msg, record.args = redact(record.getMessage()), None
            if record.exc_info and not record.exc_text:
                text = logging.Formatter().formatException(record.exc_info)
                record.exc_text = "\n".join(redact(line) for line in text.splitlines())
            record.gatekeeper_redacted = True
        return True


class RedactingLogger(Logger):
    """gunicorn's logger, masking tokens in its access and error logs; the app's own loggers
    (`gatekeeper.*`) write to the error log the same way, in its format."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        handlers = [*self.error_log.handlers, *self.access_log.handlers]
        for handler in handlers:
            if not any(isinstance(f, RedactingFilter) for f in handler.filters):
                handler.addFilter(RedactingFilter())
        app_log = logging.getLogger("gatekeeper")
        app_log.handlers = list(self.error_log.handlers)
        app_log.setLevel(logging.INFO)
        app_log.propagate = False


logger_class = RedactingLogger
