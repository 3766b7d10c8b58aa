"""Start-up of the console script against the Python baseline, measured side by side.

Run:  python -m bench.cli_startup [--runs 40]

Three commands, each run --runs times in rotation (so drift on a shared machine hits all alike),
every one a fresh process of the same interpreter:

* baseline:   python -c 'import json, urllib.request'   (what any stdlib HTTP client pays)
* help:       gatekeeper --help
* gate check: gatekeeper gate check KEY --url http://127.0.0.1:PORT --token …  (a whole round
  trip: a stub server in this process answers with a recorded gate document and its ETag, so
  the figure is the client's cost, not the server's)

Targets: gate check <= 3x the baseline, --help <= 6x. The baseline is the venv's interpreter,
as the console script's own shebang is; a version manager's `python3` shim would add its own
start-up to the baseline and flatter the ratios. Exits non-zero only if a command fails.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

PYTHON = sys.executable
SCRIPT = str(Path(sys.executable).parent / "gatekeeper")
KEY = "2026.11-r3"
GATE = {
    "package": KEY,
    "revision": 1,
    "state": "in_review",
    "release": None,
    "digest": "sha256:" + "0" * 64,
    "status": "open",
    "progress": {"signed": 41, "required": 41},
    "waiting_on": [],
    "blockers": [],
    "warnings": [],
    "applications": [],
}
GATE_TARGET = 3.0
HELP_TARGET = 6.0


class _Gate(BaseHTTPRequestHandler):
    body = json.dumps(GATE).encode()

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("ETag", '"bench"')
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def run_once(command: list[str], expect: int) -> float:
    start = time.perf_counter()
    completed = subprocess.run(command, capture_output=True, check=False, timeout=60)
    elapsed = time.perf_counter() - start
    if completed.returncode != expect:
        raise SystemExit(f"{command} exited {completed.returncode}: {completed.stderr!r}")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40)
    args = parser.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Gate)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}"
    commands = {
        "baseline": ([PYTHON, "-c", "import json, urllib.request"], 0),
        "help": ([SCRIPT, "--help"], 0),
        "gate check": ([SCRIPT, "gate", "check", KEY, "--url", url, "--token", "gk_bench"], 0),
    }
    timings: dict[str, list[float]] = {name: [] for name in commands}
    names = list(commands)
    for name in names:  # warm the page cache
        run_once(*commands[name])
    for round_number in range(args.runs):
        shift = round_number % len(names)
        for name in names[shift:] + names[:shift]:
            timings[name].append(run_once(*commands[name]))
    server.shutdown()
    medians = {name: statistics.median(values) for name, values in timings.items()}
    print(f"{args.runs} runs each, rotated; medians")
    for name, (command, _) in commands.items():
        print(f"  {name:<10} {medians[name] * 1000:6.1f} ms   {' '.join(command)}")
    for name, target in (("gate check", GATE_TARGET), ("help", HELP_TARGET)):
        ratio = medians[name] / medians["baseline"]
        verdict = "met" if ratio <= target else "MISSED"
        print(f"  {name} / baseline: {ratio:.2f}x (target <= {target:g}x) {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
