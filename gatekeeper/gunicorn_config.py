"""gunicorn settings for production, tokens masked in every log line it writes.

    gunicorn -c python:gatekeeper.gunicorn_config --bind 0.0.0.0:8000

Command-line flags and GUNICORN_CMD_ARGS override any setting here; WEB_CONCURRENCY sets the
number of worker processes.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from typing import Any

from gunicorn.glogging import Logger

from gatekeeper import logs
from gatekeeper.redaction import redact

wsgi_app = "gatekeeper.wsgi:app"

# Metrics are counted in each worker process and added up at scrape time from files in this
# directory (prometheus-client's multiprocess mode). It must be set before any worker starts;
# without one given, the master makes a private one and removes it on exit. Give the directory
# to `gatekeeper worker` processes too (deploy/ does) so their counts are scraped with these.
_METRICS_DIR = "PROMETHEUS_MULTIPROC_DIR"
_OWN_METRICS_DIR = None if os.environ.get(_METRICS_DIR) else tempfile.mkdtemp(prefix="gk-metrics-")
if _OWN_METRICS_DIR is not None:
    os.environ[_METRICS_DIR] = _OWN_METRICS_DIR

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
# With GATEKEEPER_LOG_FORMAT=json both are JSON lines instead, and the app writes the access
# log itself (gatekeeper.request: request id, route, masked path, status, duration).
_JSON_LOGS = os.environ.get("GATEKEEPER_LOG_FORMAT") == logs.JSON
accesslog = None if _JSON_LOGS else "-"
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
            if _JSON_LOGS:
                handler.setFormatter(logs.RedactingJsonFormatter())
        app_log = logging.getLogger("gatekeeper")
        app_log.handlers = list(self.error_log.handlers)
        app_log.setLevel(logging.INFO)
        app_log.propagate = False


logger_class = RedactingLogger


def on_starting(server: Any) -> None:
    """Refuse rate limits kept per process in production with several workers: each worker
    would count on its own, and a limit would allow workers × its number."""
    storage = os.environ.get("GATEKEEPER_RATE_LIMIT_STORAGE", "memory://")
    if server.cfg.workers > 1 and storage.startswith("memory://"):
        message = (
            f"GATEKEEPER_RATE_LIMIT_STORAGE is {storage} with {server.cfg.workers} workers: "
            "each worker would count rate limits on its own. Use a shared store, for example "
            "redis://127.0.0.1:6379/0 (docs/production.md)"
        )
        if os.environ.get("GATEKEEPER_ENV") == "production":
            raise SystemExit(f"gatekeeper: {message}")
        server.log.warning("gatekeeper: %s", message)


def child_exit(server: Any, worker: Any) -> None:
    """A worker's live figures leave with it; what it counted stays in the sums."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server: Any) -> None:
    if _OWN_METRICS_DIR is not None:
        shutil.rmtree(_OWN_METRICS_DIR, ignore_errors=True)
