"""Observer pages: the campaigns assigned to the user, the instructions, the trial page."""

from __future__ import annotations

from flask import Blueprint, abort, current_app, flash, redirect, render_template, url_for
from flask_login import current_user, login_required
from flask_wtf import FlaskForm
from sqlalchemy import select

from annotation_app.accounts import is_assigned
from annotation_app.campaigns import load_campaign_spec
from annotation_app.db import get_db
from annotation_app.models import Assignment, Campaign, ObserverSession
from annotation_app.sessions import NotYours, progress, sitting, spec_of, start_session
from scaling.errors import InputError

bp = Blueprint("pages", __name__)


@bp.get("/favicon.ico")
def favicon():
    """Browsers ask for it on pages without a <link rel=icon> (error pages)."""
    return current_app.send_static_file("favicon.png")


@bp.get("/")
@login_required
def home():
    """The campaigns assigned to the user (not archived), and the user's sittings."""
    db = get_db()
    campaigns = list(
        db.scalars(
            select(Campaign)
            .join(Assignment, Assignment.campaign_id == Campaign.id)
            .where(Assignment.user_id == current_user.id, Campaign.status != "archived")
            .order_by(Campaign.id)
        )
    )
    status = {c.id: c.status for c in campaigns}
    mine = [
        s
        for s in db.scalars(
            select(ObserverSession)
            .where(ObserverSession.user_id == current_user.id)
            .order_by(ObserverSession.id.desc())
        )
        if s.campaign_id in status
    ]
    specs = {c.id: load_campaign_spec(c) for c in campaigns}
    return render_template(
        "trial/home.html",
        campaigns=campaigns,
        specs=specs,
        sessions=[(s, progress(s, status[s.campaign_id])) for s in mine],
    )


def _assigned_campaign(campaign_id: int) -> Campaign:
    """The campaign if the current user may judge it; 404 otherwise (no existence leak)."""
    db = get_db()
    campaign = db.get(Campaign, campaign_id)
    if campaign is None or campaign.status == "archived":
        abort(404)
    if not is_assigned(db, current_user.id, campaign_id):
        abort(404)
    return campaign


@bp.route("/campaigns/<int:campaign_id>/<session_type>/<attribute>", methods=["GET", "POST"])
@login_required
def instructions(campaign_id: int, session_type: str, attribute: str):
    """Instructions first; the form's POST opens (or resumes) the session."""
    campaign = _assigned_campaign(campaign_id)
    spec = load_campaign_spec(campaign)
    form = FlaskForm()
    if form.validate_on_submit():
        try:
            sess = start_session(get_db(), current_user, campaign, session_type, attribute)
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
    db = get_db()
    try:
        sess = sitting(db, session_id, current_user.id)
    except NotYours:
        abort(404)
    spec = spec_of(db, sess)
    return render_template(
        "trial/trial.html", sess=sess, spec=spec, attribute=spec.attribute(sess.attribute)
    )
