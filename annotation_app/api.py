"""The JSON API the trial page drives: next pairs, and idempotent answers.

Writes need the CSRF token in the ``X-CSRFToken`` header (Flask-WTF checks it).
"""

from __future__ import annotations

from flask import Blueprint, current_app, request, url_for
from flask_login import current_user, login_required

from annotation_app.db import get_db
from annotation_app.models import Trial
from annotation_app.pages import own_session
from annotation_app.sessions import AnswerConflict, parse_answer, pending_trials, progress, submit
from scaling.errors import InputError

bp = Blueprint("api", __name__, url_prefix="/api")


def _image_json(image_id: int) -> dict:
    return {
        "id": image_id,
        "src": url_for("media.image", image_id=image_id),
        "original": url_for("media.image", image_id=image_id, view="original"),
    }


def _trial_json(trial: Trial) -> dict:
    """What the page needs; never the kind (gold/repeat stay hidden), only training."""
    left, right = (
        (trial.image_a_id, trial.image_b_id)
        if trial.left_shown == "A"
        else (trial.image_b_id, trial.image_a_id)
    )
    return {
        "id": trial.id,
        "seq": trial.seq,
        "training": trial.kind == "training",
        "left": _image_json(left),
        "right": _image_json(right),
    }


@bp.get("/sessions/<int:session_id>/next")
@login_required
def next_trials(session_id: int):
    """Current trial and the next one (to prefetch); nothing during a break."""
    db = get_db()
    sess = own_session(session_id)
    state = progress(db, sess)
    if state.finished or state.break_until is not None:
        return {"progress": state.as_json(), "trials": []}
    trials = pending_trials(db, sess, current_app.extensions["jodkit_scheduler"])
    return {"progress": state.as_json(), "trials": [_trial_json(t) for t in trials]}


@bp.post("/trials/<int:trial_id>/answer")
@login_required
def answer(trial_id: int):
    """Store one answer; a retry with the same token is acknowledged, not stored again."""
    db = get_db()
    trial = db.get(Trial, trial_id)
    if trial is None or trial.user_id != current_user.id:
        return {"error": "no such trial"}, 404
    try:
        status = submit(db, trial, parse_answer(request.get_json(silent=True)))
    except InputError as err:
        code = 409 if isinstance(err, AnswerConflict) else 400
        return {"error": str(err), "field": err.field}, code
    sess = own_session(trial.session_id)
    return {"status": status, "progress": progress(db, sess).as_json()}
