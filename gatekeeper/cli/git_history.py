"""Who git says changed a checklist file since its last approved version: every commit's
author, committer and co-authors. Git records what each committer typed; it proves nothing."""

from __future__ import annotations

import subprocess
from email.utils import getaddresses
from pathlib import Path

from gatekeeper.services.checklists import Authorship, Baseline

# Far more commits than a checklist gets between two approvals; past it, the rest is unknown.
MAX_COMMITS = 1000
TIMEOUT_SECONDS = 10
_RECORD, _FIELD, _TRAILER = "\x1e", "\x1f", "\x1d"
# Per commit: hash, author email, committer email, Co-authored-by trailers.
_FORMAT = "%x1e%H%x1f%ae%x1f%ce%x1f%(trailers:key=Co-authored-by,valueonly,separator=%x1d)"


class _GitFailed(Exception):
    """git could not answer (not installed, timed out, or refused)."""


def _git(directory: Path, *args: str) -> str:
    try:
        done = subprocess.run(  # noqa: S603 - fixed argv; file names are passed after "--"
            ["git", *args],  # noqa: S607 - git from PATH, like a developer runs it
            cwd=directory,
            capture_output=True,
            text=True,
            timeout=TIMEOUT_SECONDS,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise _GitFailed(str(exc)) from None
    if done.returncode != 0:
        raise _GitFailed(done.stderr.strip())
    return done.stdout


def _committed(directory: Path, commit: str, name: str) -> str | None:
    """The file as `commit` left it; None when it did not exist there."""
    try:
        return _git(directory, "show", f"{commit}:./{name}")
    except _GitFailed:
        return None


def _people(author: str, committer: str, trailers: str) -> tuple[set[str], bool]:
    """A commit's addresses (lower case), and whether its author and committer both name one."""
    named = [author.strip().lower(), committer.strip().lower()]
    coauthors = [address for _, address in getaddresses(trailers.split(_TRAILER))]
    found = {a.strip().lower() for a in (*named, *coauthors) if "@" in a}
    return found, all("@" in a for a in named)


def change_authors(path: Path, baseline: Baseline | None) -> Authorship:
    """Everyone who authored, committed or co-authored a commit touching `path` after the
    newest commit that holds `baseline` (or in its whole history when there is none)."""
    directory, name = path.parent, path.name
    try:
        inside = _git(directory, "rev-parse", "--is-inside-work-tree").strip() == "true"
    except _GitFailed as exc:
        if "dubious ownership" in str(exc):
            # A repository git refuses to read has a history nobody can see here.
            return Authorship(
                incomplete="git refuses to read its repository (dubious ownership; see git "
                "config safe.directory)"
            )
        inside = False
    if not inside:
        return Authorship(uncommitted="it is not in a git repository")
    try:
        shallow = _git(directory, "rev-parse", "--is-shallow-repository").strip() == "true"
        log = _git(
            directory, "log", f"--max-count={MAX_COMMITS}", f"--format={_FORMAT}", "--", name
        )
    except _GitFailed as exc:
        return Authorship(incomplete=f"git could not read its history ({exc})")
    authors: set[str] = set()
    newest: str | None = None
    nameless: list[str] = []
    commits = [record.split(_FIELD) for record in log.split(_RECORD) if record.strip()]
    reached = False
    for commit, author, committer, trailers in commits:
        if baseline is not None:
            text = _committed(directory, commit, name)
            if text is not None and baseline.matches(text):
                reached = True
                break
        found, named = _people(author, committer, trailers.strip())
        if not named:
            nameless.append(commit[:12])
        authors |= found
        if newest is None and "@" in author:
            newest = author.strip().lower()
    uncommitted = ""
    if not commits:
        uncommitted = "it is not committed in git"
    elif _committed(directory, "HEAD", name) != path.read_text(encoding="utf-8"):
        uncommitted = "it has uncommitted changes"
    return Authorship(
        authors=frozenset(authors),
        newest_author=newest,
        uncommitted=uncommitted,
        incomplete=_incomplete(baseline, reached, shallow, len(commits), nameless),
    )


def _incomplete(
    baseline: Baseline | None, reached: bool, shallow: bool, commits: int, nameless: list[str]
) -> str:
    """Why some commits of the change are hidden or name nobody; empty when none are."""
    if nameless:
        return f"commit {', '.join(nameless)} names no email address"
    if reached:
        return ""
    clone = " (a shallow clone: fetch the whole history, e.g. fetch-depth: 0)" if shallow else ""
    if baseline is not None:
        if commits >= MAX_COMMITS:
            return f"more than {MAX_COMMITS} commits since version {baseline.version}"
        return (
            f"no commit of the file holds version {baseline.version}, the last approved one, "
            f"so who changed it since cannot be read{clone}"
        )
    if shallow:
        return f"earlier commits of the file are hidden{clone}"
    if commits >= MAX_COMMITS:
        return f"the file has more than {MAX_COMMITS} commits"
    return ""
