"""`gatekeeper audit …`: verify the chain; evidence packs; the release population for auditors."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click
from flask import current_app, render_template
from flask.cli import AppGroup

from gatekeeper.cli.app_loading import reports_errors
from gatekeeper.db.base import db
from gatekeeper.db.unit_of_work import read_snapshot, unit_of_work
from gatekeeper.domain.errors import GatekeeperError
from gatekeeper.runtime import runtime
from gatekeeper.services import (
    audit,
    evidence,
    head_cache,
    head_witness,
    integrity,
    population,
    sealing,
)


@click.group("audit", cls=AppGroup)
def group() -> None:
    """The tamper-evident audit trail and release evidence packs."""


@group.command("verify")
@click.option("--expect-head", help="a chain head kept elsewhere (CI log, release email)")
@click.option("--json", "as_json", is_flag=True)
def audit_verify(expect_head: str | None, as_json: bool) -> None:
    """Walk the hash chain and check every event's signature; exit 0 intact, 1 with the first
    bad sequence number, or when the chain no longer reaches the head this host witnessed."""
    report = audit.verify(db.session, expect_head=expect_head)
    # Every link may verify in a chain that is shorter than the one this host saw.
    rewound = head_cache.chain_break(db.session)
    db.session.rollback()
    if as_json:
        ok = report.ok and rewound is None
        click.echo(json.dumps({**_report(report), "ok": ok, "witness": rewound}))
    elif report.ok and rewound is not None:
        click.echo(
            f"audit chain {rewound} (against the head this host witnessed): the database was "
            "restored or its chain cut; after a restore made on purpose, run `gatekeeper audit "
            "accept-restore`",
            err=True,
        )
    elif report.ok:
        older = f" ({report.unsigned} older than audit signing)" if report.unsigned else ""
        click.echo(
            f"audit chain intact: {report.events} events, every signature valid{older}, "
            f"head {report.head}"
        )
    else:
        click.echo(
            f"audit chain broken at event {report.first_bad_seq}: {report.problem}", err=True
        )
    sys.exit(0 if report.ok and rewound is None else 1)


def _report(report: Any) -> dict[str, Any]:
    return {
        "ok": report.ok,
        "events": report.events,
        "head": report.head,
        "first_bad_seq": report.first_bad_seq,
        "problem": report.problem,
        "unsigned": report.unsigned,
    }


@group.command("seal-records")
@click.option("--actor", required=True, help="who is sealing (recorded in the audit trail)")
@reports_errors
def audit_seal_records(actor: str) -> None:
    """Once, after upgrading to record MACs or package seals: sign every sign-off and
    governance review that has no MAC yet, and seal every package that has no seal, trusting
    them as they are now; until then they do not count (a package's gate stays shut)."""
    with unit_of_work(db.session) as session:
        sealed = sealing.seal_unsigned_records(
            session, actor=actor, now=runtime(current_app).clock.now()
        )
    click.echo(
        f"sealed {len(sealed.signoffs)} sign-off(s) and {len(sealed.reviews)} governance "
        f"review(s), and {len(sealed.packages)} package(s)"
    )


@group.command("accept-restore")
@click.option("--actor", required=True, help="who restored (recorded in the audit trail)")
@reports_errors
def audit_accept_restore(actor: str) -> None:
    """After restoring a backup on purpose: make the chain as it is now the one this host
    witnesses, so gates evaluate again. Audited; run it on every host (each keeps its own
    witness file)."""
    with unit_of_work(db.session) as session:
        accepted = head_witness.record_acceptance(
            session, actor=actor, now=runtime(current_app).clock.now()
        )
    if accepted is None:
        click.echo("nothing to accept: the audit chain continues from the witnessed head")
        return
    head_witness.witness_of(db.engine).reset(db.engine)
    click.echo(
        f"accepted: the audit chain {accepted.problem}; this host now witnesses event "
        f"{accepted.found[0] + 1} (the acceptance) and what follows"
    )


@group.command("export")
@click.argument("package")
@click.option("--format", "output_format", type=click.Choice(["json", "html"]), default="json")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path))
@reports_errors
def audit_export(package: str, output_format: str, output: Path | None) -> None:
    """Write the release evidence pack of PACKAGE (to stdout, or --output FILE)."""
    pack = evidence.build(db.session, package, now=runtime(current_app).clock.now())
    if output_format == "json":
        text = json.dumps(pack, indent=2, ensure_ascii=False)
    else:
        text = render_template("audit/evidence.html", pack=pack, page=evidence.page(pack))
    if output:
        output.write_text(text, encoding="utf-8")
        click.echo(f"wrote {output} ({pack['digest']})", err=True)
    else:
        click.echo(text)


@group.command("verify-export", with_appcontext=False)
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--key",
    "key_files",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="an audit public key (PEM) to trust instead of the keys the pack carries; repeatable",
)
def audit_verify_export(file: Path, key_files: tuple[Path, ...]) -> None:
    """Re-check an exported evidence pack (JSON or HTML) offline, with no database: its digest,
    every event's hash and every event's signature. Exit 0 intact, 1 not."""
    text = file.read_text(encoding="utf-8")
    try:
        pinned = integrity.published_keys(key_files) if key_files else None
        pack = json.loads(
            _embedded_json(text) if file.suffix.lower() in (".html", ".htm") else text
        )
        problems = evidence.verify_pack(pack, pinned_keys=pinned)
    except (ValueError, KeyError, TypeError, GatekeeperError) as exc:
        click.echo(f"error: {file} is not a readable evidence pack ({exc})", err=True)
        sys.exit(1)
    for problem in problems:
        click.echo(problem, err=True)
    if not problems:
        keys = ", ".join(sorted(pinned or pack.get("audit_keys") or {})) or "none"
        click.echo(
            f"{file}: evidence pack intact ({len(pack['audit_events'])} events, "
            f"{evidence.signed_count(pack)} signed, audit keys {keys}, {pack['digest']})"
        )
    sys.exit(1 if problems else 0)


def _embedded_json(html: str) -> str:
    start_tag = '<script type="application/json" id="gatekeeper-evidence">'
    start = html.index(start_tag) + len(start_tag)
    return html[start : html.index("</script>", start)]


@group.command("population")
@click.option("--from", "first", required=True, metavar="DATE", help="first day, YYYY-MM-DD (UTC)")
@click.option("--to", "last", required=True, metavar="DATE", help="last day, YYYY-MM-DD (UTC)")
@click.option("--format", "output_format", type=click.Choice(population.FORMATS), default="json")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path))
@reports_errors
def audit_population(first: str, last: str, output_format: str, output: Path | None) -> None:
    """Every package released from --from through --to (whole UTC days, both included), with
    approvals, checks and exceptions, for auditors to sample from (stdout, or --output FILE)."""
    with read_snapshot(db.session) as session:
        found = population.build(session, first, last, now=runtime(current_app).clock.now())
        if output_format == "csv":
            text = found.csv()
        else:
            text = json.dumps(found.document(), indent=2, ensure_ascii=False) + "\n"
    if output:
        output.write_text(text, encoding="utf-8", newline="")
    else:
        click.echo(text, nl=False)
    click.echo(
        f"{len(found.entries)} released package(s), {len(found.exceptions)} exception(s) "
        f"from {found.period.start.isoformat()} until {found.period.end.isoformat()}",
        err=True,
    )
