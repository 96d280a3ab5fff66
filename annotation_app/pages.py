"""Observer pages: the campaign list, the instructions, and the trial page itself."""

from __future__ import annotations

from flask import Blueprint, abort, current_app, flash, redirect, render_template, url_for
from flask_login import current_user, login_required
from flask_wtf import FlaskForm
from sqlalchemy import select

from annotation_app.campaigns import load_campaign_spec
from annotation_app.db import get_db
from annotation_app.models import Campaign, ObserverSession
from annotation_app.sessions import progress, start_session
from scaling.errors import InputError

bp = Blueprint("pages", __name__)


def own_session(session_id: int) -> ObserverSession:
    """The session if it belongs to the current user; 404 otherwise (no existence leak)."""
    sess = get_db().get(ObserverSession, session_id)
    if sess is None or sess.user_id != current_user.id:
        abort(404)
    return sess


@bp.get("/")
@login_required
def home():
    """Every campaign with its session types and attributes, and the user's sessions."""
    db = get_db()
    campaigns = list(db.scalars(select(Campaign).order_by(Campaign.id)))
    mine = list(
        db.scalars(
            select(ObserverSession)
            .where(ObserverSession.user_id == current_user.id)
            .order_by(ObserverSession.id.desc())
        )
    )
    specs = {c.id: load_campaign_spec(c) for c in campaigns}
    return render_template(
        "trial/home.html",
        campaigns=campaigns,
        specs=specs,
        sessions=[(s, progress(db, s)) for s in mine],
    )


@bp.route("/campaigns/<int:campaign_id>/<session_type>/<attribute>", methods=["GET", "POST"])
@login_required
def instructions(campaign_id: int, session_type: str, attribute: str):
    """Instructions first; the form's POST opens (or resumes) the session."""
    db = get_db()
    campaign = db.get(Campaign, campaign_id) or abort(404)
    spec = load_campaign_spec(campaign)
    form = FlaskForm()
    if form.validate_on_submit():
        try:
            sess = start_session(db, current_user, campaign, session_type, attribute)
        except InputError as err:
            flash(str(err))
            return redirect(url_for("pages.home"))
        return redirect(url_for("pages.trial", session_id=sess.id))
    try:
        attr = spec.attribute(attribute)
    except KeyError:
        abort(404)
    return render_template(
        "trial/instructions.html",
        campaign=campaign,
        spec=spec,
        attribute=attr,
        session_type=session_type,
        form=form,
    )


@bp.get("/sessions/<int:session_id>")
@login_required
def trial(session_id: int):
    """The trial page; all pairs come from the JSON API."""
    sess = own_session(session_id)
    spec = load_campaign_spec(get_db().get(Campaign, sess.campaign_id))
    return render_template(
        "trial/trial.html",
        sess=sess,
        spec=spec,
        attribute=spec.attribute(sess.attribute),
        debug=current_app.debug,
    )
