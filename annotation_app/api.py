"""The JSON API the trial page drives: next pairs, and idempotent answers.

Writes need the CSRF token in the ``X-CSRFToken`` header (Flask-WTF checks it). Image URLs
name the trial and the side, never the image: nothing in them tells conditions apart.
"""

from __future__ import annotations

import json

from flask import Blueprint, abort, current_app, request, url_for
from flask_login import current_user, login_required

from annotation_app.db import get_db
from annotation_app.sessions import (
    AnswerConflict,
    NotYours,
    Served,
    parse_answer,
    progress,
    serve,
    sitting,
    submit,
)
from scaling.errors import InputError

bp = Blueprint("api", __name__, url_prefix="/api")
MAX_ANSWER_BYTES = 4096
"""An answer is a few short fields; anything larger is refused before it is parsed."""


def _trial_json(trial: Served, media: str) -> dict:
    """What the page needs: the trial, whether it is training, and one URL per side
    (``media`` is the media route's prefix: url_for once per request, not four times per
    trial)."""
    sides = {}
    for side in ("left", "right"):
        src = f"{media}{trial.id}/{side}"
        sides[side] = {"src": src, "original": f"{src}?view=original"}
    return {"id": trial.id, "seq": trial.seq, "training": trial.training, **sides}


def _trials_json(served: list) -> list[dict]:
    media = url_for("media.image", trial_id=0, side="left").removesuffix("0/left")
    return [_trial_json(t, media) for t, _, _ in served]


@bp.get("/sessions/<int:session_id>/next")
@login_required
def next_trials(session_id: int):
    """Current trial and the next one (to prefetch); nothing during a break, or while the
    campaign is not active. The page asks when it opens; after an answer the next trials
    come with the answer's response."""
    db = get_db()
    try:
        sess = sitting(db, session_id, current_user.id)
    except NotYours as err:
        return {"error": str(err)}, 404
    served = serve(db, sess, current_app.extensions["jodkit_planner"])
    return {
        "progress": progress(sess, sess.campaign_status).as_json(),
        "trials": _trials_json(served),
    }


def _json_body() -> object:
    """The request's JSON, or None when it is not JSON or nested too deep; 413 when the
    body is larger than an answer can be (the CSRF check has already opened the stream
    under the app-wide limit, so the cap is checked here, declared and read)."""
    if (request.content_length or 0) > MAX_ANSWER_BYTES:
        abort(413)
    raw = request.stream.read(MAX_ANSWER_BYTES + 1)
    if len(raw) > MAX_ANSWER_BYTES:
        abort(413)
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):  # RecursionError: nesting deeper than Python's stack
        return None


@bp.post("/trials/<int:trial_id>/answer")
@login_required
def answer(trial_id: int):
    """Store one answer; a retry with the same token is acknowledged, not stored again.
    The response carries the sitting's progress and the trials to show next."""
    db = get_db()
    planner = current_app.extensions["jodkit_planner"]
    try:
        done = submit(db, current_user.id, trial_id, parse_answer(_json_body()), planner)
    except NotYours as err:
        return {"error": str(err)}, 404
    except InputError as err:
        code = 409 if isinstance(err, AnswerConflict) else 400
        return {"error": str(err), "field": err.field}, code
    return {
        "status": done.status,
        "progress": done.progress.as_json(),
        "trials": _trials_json(done.served),
    }
