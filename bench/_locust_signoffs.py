"""Locust users for bench.signoff_load: key users following their emailed links, CI polling.

Started by bench.signoff_load (`locust --headless -f bench/_locust_signoffs.py`), which writes
the plan (each key user's link paths, the gate paths, the API token) to the JSON file named by
GK_BENCH_PLAN. Every request's latency is also written, raw, to GK_BENCH_SAMPLES when Locust
stops, so medians are exact rather than Locust's rounded buckets. When every key user has
answered every link, the run stops by itself; --run-time is only the safety bound.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import re
import time
from pathlib import Path

import gevent
from locust import HttpUser, between, constant, events, task
from locust.exception import StopUser

PLAN = json.loads(Path(os.environ["GK_BENCH_PLAN"]).read_text(encoding="utf-8"))
CSRF = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')
REQUEST_IDS = re.compile(r'name="(r\d+)-decision"')
SCENARIO = re.compile(r'name="(r\d+-scenario-\d+)"')

SIGN_PAGE = "GET /s/[token]"
SIGN_POST = "POST /s/[token]"
GATE = "GET /api/v1/packages/[key]/gate"

_signers = itertools.count()
_samples: list[tuple[str, float, bool, float]] = []
_answered = {"links": 0, "finished_users": 0}


@events.request.add_listener
def _record(name: str, response_time: float, exception: object, **_: object) -> None:
    _samples.append((name, response_time, exception is None, time.time()))


@events.quitting.add_listener
def _dump(**_: object) -> None:
    Path(os.environ["GK_BENCH_SAMPLES"]).write_text(
        json.dumps({"samples": _samples, "answered": _answered["links"]}), encoding="utf-8"
    )


class KeyUser(HttpUser):
    """One named key user: opens each emailed link, confirms every scenario, sends the form."""

    fixed_count = len(PLAN["users"])
    wait_time = between(0, 0.5)

    def on_start(self) -> None:
        self.email, links = PLAN["users"][next(_signers)]
        self.links = list(links)
        random.shuffle(self.links)

    @task
    def answer_next_link(self) -> None:
        if not self.links:
            # The last key user to finish ends the run, pollers included.
            _answered["finished_users"] += 1
            if _answered["finished_users"] == KeyUser.fixed_count:
                # From its own greenlet: quit() stops every user, this one included.
                gevent.spawn(self.environment.runner.quit)
            raise StopUser
        path = self.links.pop()
        with self.client.get(path, name=SIGN_PAGE, catch_response=True) as page:
            csrf = CSRF.search(page.text or "")
            if page.status_code != 200 or not csrf:
                page.failure(f"sign page answered {page.status_code}")
                return
        form = {"csrf_token": csrf.group(1)}
        for prefix in sorted(set(REQUEST_IDS.findall(page.text))):
            form[f"{prefix}-decision"] = "confirmed"
        for box in SCENARIO.findall(page.text):
            form[box] = "on"
        with self.client.post(path, data=form, name=SIGN_POST, catch_response=True) as answer:
            if answer.status_code != 200 or "recorded" not in answer.text:
                answer.failure(f"sign-off answered {answer.status_code}")
                return
        _answered["links"] += 1


class GatePoller(HttpUser):
    """A CI job asking whether the gate of one of the release-day packages is open."""

    fixed_count = PLAN["pollers"]
    wait_time = constant(PLAN["poll_interval"])

    @task
    def poll(self) -> None:
        headers = {"Authorization": f"Bearer {PLAN['token']}"}
        with self.client.get(
            random.choice(PLAN["gate_paths"]), headers=headers, name=GATE, catch_response=True
        ) as answer:
            if answer.status_code != 200:
                answer.failure(f"gate answered {answer.status_code}")
