"""Benchmark data: generated checklists and packages through the services, history in bulk.

The package that gets measured is built exactly as the product builds it (sync, governance
approval, create, submit, one `record_signoff` per request). Only the history around it, the
thousands of released packages a long-lived installation accumulates, is bulk-inserted with
SQLAlchemy core `insert()` (executemany for packages, `from_select` for the million-row tables),
as copies of the measured package's own rows.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.orm import Session, scoped_session

from bench._harness import MANAGER
from gatekeeper.db.models import Package, PackageApplication, Signoff, SignoffRequest
from gatekeeper.db.unit_of_work import unit_of_work
from gatekeeper.domain.clock import Clock
from gatekeeper.services import packages, signoffs, tokens
from tests.support import generated

# `X as X`: re-exported to the benchmarks, which build the same checklists as the size-dependent
# tests.
from tests.support.generated import key_user as key_user
from tests.support.generated import sync_and_approve as sync_and_approve
from tests.support.generated import write_checklists as write_checklists


def create_and_submit(
    session: Session,
    key: str,
    slugs: Sequence[str],
    *,
    links: signoffs.LinkSettings,
    clock: Clock,
) -> None:
    """Assemble and submit a package the way the API does: links and emails are issued."""
    spec = generated.package_spec(
        key, (packages.ApplicationSpec(s, "1.0.0", f"{s}: routine release") for s in slugs)
    )
    packages.create_package(session, spec, assembler=MANAGER, clock=clock)
    signoffs.submit_for_signoff(session, key, actor=MANAGER, clock=clock, links=links)


def sign(
    # Any: the benchmarks pass Flask-SQLAlchemy's `db.session`, a scoped_session of its own
    # Session subclass, and scoped_session is invariant in its session type.
    session: scoped_session[Any],
    key: str,
    *,
    clock: Clock,
    kinds: Iterable[str] | None = None,
    per_transaction: int = 50,
) -> int:
    """Record a positive decision for every pending request (of `kinds`) through the service.

    A few dozen per transaction, as people sign in real life: `record_signoff` expires the
    whole session after taking its lock, so one transaction for hundreds of sign-offs would
    cost time quadratic in their number (see BENCHMARKS.md).
    """
    wanted = set(kinds) if kinds is not None else None
    with unit_of_work(session) as tx:
        ids = [
            r.id for r in packages.pending_requests(tx, key) if wanted is None or r.kind in wanted
        ]
    for start in range(0, len(ids), per_transaction):
        with unit_of_work(session) as tx:
            for request_id in ids[start : start + per_transaction]:
                request = tx.get(SignoffRequest, request_id)
                assert request is not None
                packages.record_signoff(
                    tx, request_id, generated.positive_decision(request), clock=clock
                )
        session.remove()
    return len(ids)


def create_token(session: Session, name: str, scopes: Sequence[str], clock: Clock) -> str:
    # A read token needs no owner (an owner must be an active staff account).
    issued = tokens.create_token(session, name=name, scopes=tuple(scopes), owner=None, clock=clock)
    return issued.secret


# --- history in bulk ----------------------------------------------------------------------------


def _rows(connection: sa.Connection, table: sa.Table, *where: Any) -> list[dict[str, Any]]:
    return [dict(r._mapping) for r in connection.execute(sa.select(table).where(*where))]


def add_history(
    engine: sa.Engine,
    *,
    template_key: str,
    count: int,
    first_index: int,
    applications_per_package: int = 3,
) -> dict[str, int]:
    """Insert `count` released packages, each a copy of `applications_per_package` applications
    of the template package with all their requests and sign-offs; returns rows per table.

    Packages and their applications (tens of thousands of rows) go in with core `insert()`
    executemany; the million-row tables are copied inside the database with
    `insert().from_select()` joined to a plan table, which is what keeps 2.5 million rows within
    the time budget on both engines (Python-side executemany spends most of its time in bind
    processing and runs about ten times slower).
    """
    # Declarative models type `__table__` as any FromClause; these four are plain tables.
    packages_t = cast(sa.Table, Package.__table__)
    apps_t = cast(sa.Table, PackageApplication.__table__)
    requests_t = cast(sa.Table, SignoffRequest.__table__)
    signoffs_t = cast(sa.Table, Signoff.__table__)
    inserted = {"packages": 0, "package_applications": 0, "signoff_requests": 0, "signoffs": 0}
    if count <= 0:
        return inserted
    with engine.begin() as connection:
        (template,) = _rows(connection, packages_t, packages_t.c.key == template_key)
        template_apps = sorted(
            _rows(connection, apps_t, apps_t.c.package_id == template["id"]), key=lambda r: r["id"]
        )

        def span(table: sa.Table, *where: Any) -> tuple[int, int]:
            low, high = connection.execute(
                sa.select(sa.func.min(table.c.id), sa.func.max(table.c.id)).where(*where)
            ).one()
            return low or 0, high or 0

        def next_id(table: sa.Table) -> int:
            return (connection.scalar(sa.select(sa.func.max(table.c.id))) or 0) + 1

        request_low, request_high = span(requests_t, requests_t.c.package_id == template["id"])
        signoff_low, signoff_high = span(signoffs_t, signoffs_t.c.package_id == template["id"])
        # Every copied application gets its own id window as wide as the template's span.
        request_width = request_high - request_low + 1
        signoff_width = signoff_high - signoff_low + 1
        request_base = next_id(requests_t) - request_low
        signoff_base = next_id(signoffs_t) - signoff_low
        package_id, app_id = next_id(packages_t), next_id(apps_t)
        released = template["submitted_at"] or template["created_at"]
        package_rows: list[dict[str, Any]] = []
        app_rows: list[dict[str, Any]] = []
        plan_rows: list[dict[str, int]] = []
        for offset in range(count):
            index = first_index + offset
            package_rows.append(
                {
                    **template,
                    "id": package_id,
                    "key": f"hist-{index:06d}",
                    "title": f"History release {index}",
                    "state": "released",
                    "released_at": released,
                    "released_by": "bench-ci",
                    "release_digest": "sha256:" + "0" * 64,
                    "open_announced_revision": template["revision"],
                }
            )
            for k in range(applications_per_package):
                source = template_apps[(index * applications_per_package + k) % len(template_apps)]
                app_rows.append({**source, "id": app_id, "package_id": package_id})
                plan_rows.append(
                    {
                        "copy": len(plan_rows),
                        "package_id": package_id,
                        "app_id": app_id,
                        "template_app_id": source["id"],
                    }
                )
                app_id += 1
            package_id += 1
        connection.execute(packages_t.insert(), package_rows)
        connection.execute(apps_t.insert(), app_rows)
        plan = sa.Table(
            "bench_history_plan",
            sa.MetaData(),
            sa.Column("copy", sa.Integer, primary_key=True),
            sa.Column("package_id", sa.Integer),
            sa.Column("app_id", sa.Integer),
            sa.Column("template_app_id", sa.Integer, index=True),
            prefixes=["TEMPORARY"],
        )
        plan.create(connection)
        connection.execute(plan.insert(), plan_rows)
        for table, width, base, extra in (
            (requests_t, request_width, request_base, {"link_id": sa.null()}),
            (signoffs_t, signoff_width, signoff_base, {}),
        ):
            # The template's rows in a small indexed temporary table, so each planned copy
            # finds its ~40 source rows by index instead of scanning the whole template.
            source_t = sa.Table(
                f"bench_template_{table.name}",
                sa.MetaData(),
                *[sa.Column(c.name, c.type) for c in table.c],
                prefixes=["TEMPORARY"],
            )
            sa.Index(f"ix_bench_template_{table.name}", source_t.c.package_application_id)
            source_t.create(connection)
            connection.execute(
                source_t.insert().from_select(
                    [c.name for c in table.c],
                    sa.select(table).where(table.c.package_id == template["id"]),
                )
            )
            overrides: dict[str, Any] = {
                "id": plan.c.copy * width + source_t.c.id + base,
                "package_id": plan.c.package_id,
                "package_application_id": plan.c.app_id,
                **extra,
            }
            if table is signoffs_t:
                overrides["request_id"] = sa.case(
                    (source_t.c.request_id.is_(None), sa.null()),
                    else_=plan.c.copy * request_width + source_t.c.request_id + request_base,
                )
            columns = [c.name for c in table.c]
            rows = sa.select(*[overrides.get(c, source_t.c[c]) for c in columns]).join_from(
                plan, source_t, plan.c.template_app_id == source_t.c.package_application_id
            )
            connection.execute(table.insert().from_select(columns, rows))
            source_t.drop(connection)
        plan.drop(connection)
        if engine.dialect.name == "postgresql":
            for table in (packages_t, apps_t, requests_t, signoffs_t):
                # Table names come from our own models, not from input.
                connection.exec_driver_sql(
                    f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), "  # noqa: S608
                    f"(SELECT max(id) FROM {table.name}))"
                )
        for table in (packages_t, apps_t, requests_t, signoffs_t):
            inserted[table.name] = len(package_rows) if table is packages_t else 0
        inserted["package_applications"] = len(app_rows)
        for table in (requests_t, signoffs_t):
            inserted[table.name] = (
                connection.scalar(
                    sa.select(sa.func.count())
                    .select_from(table)
                    .where(table.c.package_id >= package_rows[0]["id"])
                )
                or 0
            )
    return inserted


def loader_engine(url: str) -> sa.Engine:
    """An engine for bulk loading only: foreign-key checks and fsyncs off, a big page cache.
    The rows it copies are copies of rows the services wrote, so they are consistent already;
    the servers use the product's own engine settings."""
    engine = sa.create_engine(url, poolclass=sa.NullPool)
    if engine.dialect.name == "sqlite":

        @sa.event.listens_for(engine, "connect")
        def _pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            for pragma in ("foreign_keys=OFF", "synchronous=OFF", "cache_size=-262144"):
                cursor.execute(f"PRAGMA {pragma}")
            cursor.close()

    else:

        @sa.event.listens_for(engine, "connect")
        def _replica(dbapi_connection: Any, _record: Any) -> None:
            # Skips the foreign-key triggers for this session (needs a superuser, as the
            # bench's postgres role is); constraints and indexes still apply.
            with dbapi_connection.cursor() as cursor:
                cursor.execute("SET session_replication_role = replica")
                cursor.execute("SET synchronous_commit = off")
            dbapi_connection.commit()

    return engine


def analyze(engine: sa.Engine) -> None:
    """Planner statistics, as autovacuum keeps them on a live PostgreSQL (it is off on some
    development servers, and a bulk load outruns it anyway). SQLite is left as the product
    leaves it: it never runs ANALYZE."""
    if engine.dialect.name != "postgresql":
        return
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.exec_driver_sql("VACUUM ANALYZE")


def count_rows(engine: sa.Engine, table: sa.FromClause) -> int:
    with engine.connect() as connection:
        return connection.scalar(sa.select(sa.func.count()).select_from(table)) or 0


def timed(action: Any, *args: Any, **kwargs: Any) -> tuple[Any, float]:
    start = time.perf_counter()
    result = action(*args, **kwargs)
    return result, time.perf_counter() - start
