"""Release package pages: assemble (with a plan preview), the board, edit, and the actions."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_wtf import FlaskForm
from wtforms import DateField, HiddenField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length, Optional

from gatekeeper.db.base import db
from gatekeeper.db.unit_of_work import unit_of_work
from gatekeeper.domain import package as lifecycle
from gatekeeper.domain.errors import Conflict, ValidationFailed
from gatekeeper.origin import request_origin
from gatekeeper.runtime import Runtime, runtime
from gatekeeper.services import (
    boards,
    emergencies,
    evidence,
    packages,
    plans,
    reminders,
    signoffs,
)
from gatekeeper.web.access import signed_in

bp = Blueprint("packages", __name__, url_prefix="/packages")

PLAN, CREATE, SUBMIT = "plan", "create", "submit"


class PackageForm(FlaskForm):
    key = StringField(
        "Package key",
        validators=[DataRequired(), Length(max=64)],
        description="Letters, digits, dots, dashes; for example 2026.11-r3",
    )
    title = StringField("Title", validators=[DataRequired(), Length(max=200)])
    environment = StringField(
        "Target environment", validators=[DataRequired(), Length(max=64)], default="production"
    )
    planned_for = DateField("Planned release date", validators=[Optional()])


class EditForm(PackageForm):
    key = None  # the key never changes


class EmergencyForm(FlaskForm):
    reason = TextAreaField(
        "Why is this an emergency?",
        validators=[DataRequired(), Length(max=emergencies.MAX_REASON_CHARS)],
        description="What is broken and for whom; the approvers read this before they decide.",
    )


class ReleaseForm(FlaskForm):
    digest = HiddenField(validators=[DataRequired(), Length(max=80)])
    notes = TextAreaField("Release notes (optional)", validators=[Length(max=4000)])


def _rt() -> Runtime:
    return runtime(current_app)


def _choices(form: Mapping[str, str], offered: Sequence[str]) -> dict[str, dict[str, Any]]:
    """What the form says about each offered application (only offered ones are read)."""
    return {
        slug: {
            "picked": form.get(f"app-{slug}") == "on",
            "version": form.get(f"app-{slug}-version", "").strip(),
            "summary": form.get(f"app-{slug}-summary", "").strip(),
        }
        for slug in offered
    }


def _current_choices(current: plans.EditView, offered: Sequence[str]) -> dict[str, dict[str, Any]]:
    """The edit form as it starts: the package's applications ticked, with what they say now."""
    choices: dict[str, dict[str, Any]] = {}
    for slug in offered:
        spec = current.applications.get(slug)
        choices[slug] = {
            "picked": spec is not None,
            "version": spec.version if spec else "",
            "summary": spec.change_summary if spec else "",
        }
    return choices


def _specs(
    choices: Mapping[str, Mapping[str, Any]],
) -> tuple[list[packages.ApplicationSpec], dict[str, str]]:
    specs: list[packages.ApplicationSpec] = []
    errors: dict[str, str] = {}
    for slug, choice in choices.items():
        if not choice["picked"]:
            continue
        if not choice["version"]:
            errors[slug] = "Give the version of this application that ships."
        elif len(choice["version"]) > packages.MAX_VERSION_LABEL:
            errors[slug] = f"A version is at most {packages.MAX_VERSION_LABEL} characters."
        elif len(choice["summary"]) > lifecycle.MAX_SUMMARY_CHARS:
            errors[slug] = f"A change summary is at most {lifecycle.MAX_SUMMARY_CHARS} characters."
        specs.append(packages.ApplicationSpec(slug, choice["version"], choice["summary"]))
    if not specs:
        errors["applications"] = "Pick at least one application."
    return specs, errors


@bp.route("/new", methods=["GET", "POST"])
def new() -> ResponseReturnValue:
    user = signed_in()
    form = PackageForm()
    offered = plans.approved_applications(db.session)
    choices = _choices(request.form, [a.slug for a in offered])
    context: dict[str, Any] = {"form": form, "offered": offered, "choices": choices}
    if request.method == "GET":
        return render_template("packages/new.html", **context, errors={}, plan=None)
    specs, errors = _specs(choices)
    if not form.validate() or errors:
        return render_template("packages/new.html", **context, errors=errors, plan=None), 422
    action = request.form.get("action", PLAN)
    plan = plans.plan_for(
        db.session,
        specs,
        assembler=user.email,
        environment=form.environment.data or "",
        planned_for=form.planned_for.data,
        clock=_rt().clock,
    )
    if action not in (CREATE, SUBMIT):
        return render_template("packages/new.html", **context, errors={}, plan=plan)
    spec = packages.PackageSpec(
        key=(form.key.data or "").strip(),
        title=form.title.data or "",
        environment=form.environment.data or "",
        planned_for=form.planned_for.data,
        applications=tuple(specs),
    )
    rt = _rt()
    try:
        with unit_of_work(db.session, origin=request_origin()) as session:
            key = plans.assemble_package(
                session,
                spec,
                assembler=user.email,
                submit=action == SUBMIT,
                clock=rt.clock,
                links=rt.link_settings(),
            ).key
    except (ValidationFailed, Conflict) as error:
        status = 409 if isinstance(error, Conflict) else 422
        return render_template(
            "packages/new.html", **context, errors={"form": error.message}, plan=plan
        ), status
    flash(
        f"Package {key} submitted: sign-off requests are on their way."
        if action == SUBMIT
        else f"Draft {key} saved. Submit it when the plan looks right.",
        "ok",
    )
    return redirect(url_for("packages.show", key=key))


def _board(key: str) -> boards.Board:
    rt = _rt()
    return boards.package_board(
        db.session,
        key,
        assembled_by=signed_in().package_scope,
        now=rt.clock.now(),
        overdue_policy=rt.settings.overdue_review_policy,
        overdue_after=rt.link_settings().reminder_after,
        finding_warn_after=rt.governance_settings().finding_warn_after,
    )


@bp.get("/<key>")
def show(key: str) -> ResponseReturnValue:
    board = _board(key)
    release = ReleaseForm(digest=board.gate.digest)
    return render_template(
        "packages/show.html", board=board, release_form=release, emergency_form=EmergencyForm()
    )


@bp.get("/<key>/timeline")
def timeline(key: str) -> ResponseReturnValue:
    found = boards.package_timeline(db.session, key, assembled_by=signed_in().package_scope)
    return render_template("packages/timeline.html", key=key, timeline=found)


@bp.get("/<key>/evidence.html")
def evidence_pack(key: str) -> ResponseReturnValue:
    """The same self-contained file `gatekeeper audit export --format html` writes."""
    _in_reach(db.session, key)
    pack = evidence.build(db.session, key, now=_rt().clock.now())
    page = render_template("audit/evidence.html", pack=pack, page=evidence.page(pack))
    filename = f"gatekeeper-evidence-{key}.html"
    return page, 200, {"Content-Disposition": f'attachment; filename="{filename}"'}


def _in_reach(session: Any, key: str) -> None:
    """Raise NotFound (404, never 403) when the package is outside the user's reach."""
    boards.find_package_id(session, key, assembled_by=signed_in().package_scope)


@bp.route("/<key>/edit", methods=["GET", "POST"])
def edit(key: str) -> ResponseReturnValue:
    user = signed_in()
    current = plans.package_for_edit(db.session, key, assembled_by=user.package_scope)
    form = EditForm(
        data={
            "title": current.title,
            "environment": current.environment,
            "planned_for": current.planned_for,
        }
    )
    offered = plans.editable_applications(db.session, current)
    if request.method == "GET":
        choices = _current_choices(current, [a.slug for a in offered])
        context = {"form": form, "current": current, "offered": offered, "choices": choices}
        return render_template("packages/edit.html", **context, errors={})
    choices = _choices(request.form, [a.slug for a in offered])
    specs, errors = _specs(choices)
    context = {"form": form, "current": current, "offered": offered, "choices": choices}
    if not form.validate() or errors:
        return render_template("packages/edit.html", **context, errors=errors), 422
    changes = packages.PackageChanges(
        title=form.title.data,
        environment=form.environment.data,
        planned_for=form.planned_for.data,
        applications=tuple(specs),
    )
    rt = _rt()
    try:
        with unit_of_work(db.session, origin=request_origin()) as session:
            _in_reach(session, key)
            package = signoffs.edit_and_reissue(
                session, key, changes, actor=user.email, clock=rt.clock, links=rt.link_settings()
            )
            revision = package.revision
    except ValidationFailed as error:
        return render_template("packages/edit.html", **context, errors={"form": error.message}), 422
    if revision != current.revision:
        flash(
            f"Saved as revision {revision}: what changed needs new sign-offs and fresh links "
            "were emailed.",
            "ok",
        )
    else:
        flash("Saved.", "ok")
    return redirect(url_for("packages.show", key=key))


@bp.post("/<key>/submit")
def submit(key: str) -> ResponseReturnValue:
    user, rt = signed_in(), _rt()
    with unit_of_work(db.session, origin=request_origin()) as session:
        _in_reach(session, key)
        signoffs.submit_for_signoff(
            session, key, actor=user.email, clock=rt.clock, links=rt.link_settings()
        )
    flash(f"Package {key} submitted: sign-off requests are on their way.", "ok")
    return redirect(url_for("packages.show", key=key))


@bp.post("/<key>/remind")
def remind(key: str) -> ResponseReturnValue:
    rt = _rt()
    with unit_of_work(db.session, origin=request_origin()) as session:
        _in_reach(session, key)
        reminded = reminders.remind_now(session, key, clock=rt.clock, links=rt.link_settings())
    if reminded:
        flash(f"Reminder with a fresh link emailed to {', '.join(reminded)}.", "ok")
    else:
        flash("Nobody to remind: every requested sign-off is in.", "ok")
    return redirect(url_for("packages.show", key=key))


@bp.post("/<key>/cancel")
def cancel(key: str) -> ResponseReturnValue:
    user, rt = signed_in(), _rt()
    with unit_of_work(db.session, origin=request_origin()) as session:
        _in_reach(session, key)
        signoffs.cancel_and_revoke(
            session,
            key,
            actor=user.email,
            clock=rt.clock,
            overdue_policy=rt.settings.overdue_review_policy,
        )
    flash(f"Package {key} cancelled; its open sign-off links no longer work.", "ok")
    return redirect(url_for("packages.show", key=key))


@bp.post("/<key>/release")
def release(key: str) -> ResponseReturnValue:
    user, rt = signed_in(), _rt()
    form = ReleaseForm()
    if not form.validate():
        raise ValidationFailed("the release form is incomplete; reload the package page")
    try:
        with unit_of_work(db.session, origin=request_origin()) as session:
            _in_reach(session, key)
            emergencies.release_package(
                session,
                key,
                digest=form.digest.data or "",
                actor=user.email,
                notes=form.notes.data or "",
                clock=rt.clock,
                links=rt.link_settings(),
                reports=rt.governance_settings(),
            )
    except Conflict as error:
        gate = (error.details or {}).get("gate") if isinstance(error.details, dict) else None
        return render_template(
            "packages/conflict.html", key=key, message=error.message, gate=gate
        ), 409
    flash(f"Package {key} is released. Key users and consumers are being told.", "ok")
    return redirect(url_for("packages.show", key=key))


@bp.post("/<key>/emergency")
def emergency(key: str) -> ResponseReturnValue:
    user, rt = signed_in(), _rt()
    form = EmergencyForm()
    with unit_of_work(db.session, origin=request_origin()) as session:
        _in_reach(session, key)
        if not form.validate():
            raise ValidationFailed("say why this is an emergency (reason, up to 2000 characters)")
        emergencies.declare(
            session,
            key,
            reason=form.reason.data or "",
            actor=user.email,
            clock=rt.clock,
            links=rt.link_settings(),
        )
    flash(f"Emergency declared on {key}: its emergency approvers are being asked.", "ok")
    return redirect(url_for("packages.show", key=key))
