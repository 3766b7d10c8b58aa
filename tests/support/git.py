"""Real git repositories in temporary folders: commits with chosen (or forged) authors."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from tests.conftest import SAMPLES

# No user or system configuration leaks in: every identity is the one a test names.
_ISOLATED = {"GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}


def git(repo: Path, *args: str, author: str | None = None, committer: str | None = None) -> str:
    """Run git in `repo`; `author` and `committer` are "Name <email>" as git writes them."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    environ.update(_ISOLATED)
    for role, identity in (("AUTHOR", author), ("COMMITTER", committer)):
        if identity:
            name, _, email = identity.partition(" <")
            environ[f"GIT_{role}_NAME"] = name
            environ[f"GIT_{role}_EMAIL"] = email.rstrip(">")
    done = subprocess.run(
        ["git", *args],
        cwd=repo,
        env=environ,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout


def person(email: str) -> str:
    return f"{email.split('@')[0].title()} <{email}>"


def new_repo(root: Path, *applications: str) -> Path:
    """A git repository whose `checklists/` holds the samples of `applications`, uncommitted."""
    repo = root / "repo"
    (repo / "checklists").mkdir(parents=True)
    git(repo, "init", "--quiet", "--initial-branch=main")
    for application in applications:
        shutil.copy(SAMPLES / f"{application}.yaml", repo / "checklists")
    return repo


def commit(repo: Path, message: str, *, by: str, author: str | None = None) -> None:
    """Commit everything as committer `by`; the author is `author` (forged or not) or `by`."""
    git(repo, "add", "--all")
    git(
        repo,
        "commit",
        "--quiet",
        "--message",
        message,
        author=person(author or by),
        committer=person(by),
    )
