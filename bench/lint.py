"""Lint of 1,000 checklist files versus parsing the same files with PyYAML's C loader alone.

Run: python -m bench.lint [--files 1000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from gatekeeper.services.checklists import lint_paths

SAMPLES = Path(__file__).resolve().parent.parent / "checklists"


def make_files(directory: Path, count: int) -> list[Path]:
    sources = [p.read_text() for p in sorted(SAMPLES.glob("*.yaml"))]
    paths = []
    for index in range(count):
        text = sources[index % len(sources)]
        for line in text.splitlines():
            if line.startswith("application: "):
                text = text.replace(line, f"{line}-{index}", 1)
                break
        path = directory / f"checklist-{index:04d}.yaml"
        path.write_text(text)
        paths.append(path)
    return paths


def time_it(action: object, rounds: int) -> list[float]:
    timings = []
    for _ in range(rounds):
        start = time.perf_counter()
        action()  # type: ignore[operator]
        timings.append(time.perf_counter() - start)
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        paths = make_files(directory, args.files)

        def pyyaml_only() -> None:
            for path in paths:
                with path.open("rb") as handle:
                    yaml.load(handle, Loader=yaml.CSafeLoader)

        def lint() -> None:
            report = lint_paths([directory])
            assert report.ok, report.problems[:3]

        baseline = time_it(pyyaml_only, args.rounds)
        ours = time_it(lint, args.rounds)
        start = time.perf_counter()
        completed = subprocess.run(
            [Path(sys.executable).parent / "gatekeeper", "checklists", "lint", str(directory)],
            capture_output=True,
            check=False,
        )
        cli_seconds = time.perf_counter() - start
    base_median, ours_median = statistics.median(baseline), statistics.median(ours)
    print(f"files: {args.files}, rounds: {args.rounds}")
    print(f"PyYAML CSafeLoader alone      median {base_median:.3f} s")
    print(f"gatekeeper lint (in process)  median {ours_median:.3f} s")
    print(f"ratio lint / PyYAML           {ours_median / base_median:.2f}x  (target <= 3x)")
    print(
        f"`gatekeeper checklists lint` command, whole process: {cli_seconds:.2f} s "
        f"(exit {completed.returncode}; target < 10 s)"
    )


if __name__ == "__main__":
    main()
