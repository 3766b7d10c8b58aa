"""Webhook subscriptions for admins: add, remove, rotate a secret, read the delivery log, as with
`gatekeeper webhooks`."""

from __future__ import annotations

from flask import Blueprint, current_app, flash, redirect, render_template, url_for
from flask.typing import ResponseReturnValue
from flask_wtf import FlaskForm
from wtforms import SelectChoice, SelectMultipleField, StringField
from wtforms.validators import DataRequired, Length

from gatekeeper.db.base import db
from gatekeeper.db.unit_of_work import unit_of_work
from gatekeeper.domain.errors import ValidationFailed
from gatekeeper.origin import request_origin
from gatekeeper.runtime import runtime
from gatekeeper.services import webhooks
from gatekeeper.web.access import signed_in

bp = Blueprint("webhooks", __name__, url_prefix="/webhooks")

# A secret is shown once, on the answer to the POST that made it: never kept by a cache.
NO_STORE = {"Cache-Control": "no-store"}


class SubscriptionForm(FlaskForm):
    url = StringField("Receiver URL", validators=[DataRequired(), Length(max=webhooks.URL_LIMIT)])
    events = SelectMultipleField(
        "Events", choices=[SelectChoice(e, e) for e in webhooks.EVENTS], validators=[DataRequired()]
    )


def _page(form: SubscriptionForm, error: str = "") -> str:
    return render_template(
        "webhooks/index.html",
        subscriptions=webhooks.list_subscriptions(db.session),
        form=form,
        events=webhooks.EVENTS,
        error=error,
    )


@bp.get("/")
def index() -> ResponseReturnValue:
    return _page(SubscriptionForm())


@bp.post("/")
def create() -> ResponseReturnValue:
    form = SubscriptionForm()
    if not form.validate():
        return _page(form), 422
    rt = runtime(current_app)
    try:
        with unit_of_work(db.session, origin=request_origin()) as session:
            subscription, secret = webhooks.add_subscription(
                session,
                url=form.url.data or "",
                events=form.events.data or [],
                actor=signed_in().email,
                clock=rt.clock,
                settings=rt.webhook_settings(),
            )
            number, url = subscription.id, subscription.url
    except ValidationFailed as error:
        return _page(form, error.message), 422
    page = render_template("webhooks/secret.html", number=number, url=url, secret=secret)
    return page, 201, NO_STORE


@bp.post("/<int:subscription_id>/rotate")
def rotate(subscription_id: int) -> ResponseReturnValue:
    rt = runtime(current_app)
    with unit_of_work(db.session, origin=request_origin()) as session:
        secret = webhooks.rotate_secret(
            session,
            subscription_id,
            actor=signed_in().email,
            clock=rt.clock,
            settings=rt.webhook_settings(),
        )
        subscription, _ = webhooks.delivery_log(session, subscription_id, limit=0)
        url = subscription.url
    page = render_template(
        "webhooks/secret.html", number=subscription_id, url=url, secret=secret, rotated=True
    )
    return page, 200, NO_STORE


@bp.post("/<int:subscription_id>/remove")
def remove(subscription_id: int) -> ResponseReturnValue:
    with unit_of_work(db.session, origin=request_origin()) as session:
        webhooks.remove_subscription(
            session, subscription_id, actor=signed_in().email, clock=runtime(current_app).clock
        )
    flash(f"Webhook #{subscription_id} removed; nothing more is posted to it.", "ok")
    return redirect(url_for("webhooks.index"))


@bp.get("/<int:subscription_id>/")
def deliveries(subscription_id: int) -> ResponseReturnValue:
    subscription, attempts = webhooks.delivery_log(db.session, subscription_id)
    return render_template("webhooks/deliveries.html", subscription=subscription, attempts=attempts)
