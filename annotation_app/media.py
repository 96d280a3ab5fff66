"""Serving campaign images, only through trials served to the observer asking.

``/media/<trial>/<left|right>`` names a trial and a side, never an image: the URL says
nothing about the condition behind it, and another observer's trial, a trial not yet
served, or an archived campaign answers 404. Files come only from the campaign image store
(werkzeug's ``safe_join``). Region-of-interest crops are cut at the camera's resolution,
never resized (the browser shows them 1:1 or downscales them, and says which), and cached
under ``CACHE_DIR``. Responses may be cached by the browser only (``private``).
"""

from __future__ import annotations

from pathlib import Path
from uuid import uuid4

from flask import Blueprint, abort, current_app, request, send_from_directory
from flask_login import current_user, login_required
from PIL import Image as PILImage
from sqlalchemy import and_, select
from werkzeug.security import safe_join

from annotation_app.db import get_db
from annotation_app.models import Assignment, Campaign, Image, Trial

bp = Blueprint("media", __name__, url_prefix="/media")
MAX_AGE_S = 600


def crop(source: Path, roi: list[int], target: Path) -> None:
    """Cut ``roi`` (x, y, w, h) out of ``source`` at its own resolution, losslessly."""
    x, y, w, h = roi
    with PILImage.open(source) as im:
        region = im.crop((x, y, x + w, y + h))
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f"{target.stem}.{uuid4().hex}.tmp")
        region.save(tmp, format="PNG")
    tmp.replace(target)  # atomic: concurrent requests never see half a file


def _served_image(trial_id: int, side: str) -> Image:
    """The image on ``side`` of a trial served to the current user, or 404."""
    db = get_db()
    row = db.execute(
        select(Trial.image_a_id, Trial.image_b_id, Trial.left_shown, Trial.served_at)
        .join(Campaign, Campaign.id == Trial.campaign_id)
        .join(
            Assignment,
            and_(
                Assignment.campaign_id == Trial.campaign_id,
                Assignment.user_id == Trial.user_id,
            ),
        )
        .where(
            Trial.id == trial_id,
            Trial.user_id == current_user.id,
            Campaign.status != "archived",
        )
    ).first()
    if row is None or row.served_at is None:
        abort(404)
    a_left = row.left_shown == "A"
    image_id = row.image_a_id if (side == "left") == a_left else row.image_b_id
    image = db.get(Image, image_id)
    db.commit()
    return image


@bp.get("/<int:trial_id>/<any(left, right):side>")
@login_required
def image(trial_id: int, side: str):
    """The displayed version (the ROI crop when the spec gives one) or, with
    ``view=original``, the whole stored image."""
    row = _served_image(trial_id, side)
    store = current_app.config["IMAGE_STORE"]
    if safe_join(store, row.filename) is None:
        abort(404)
    if row.roi is None or request.args.get("view") == "original":
        response = send_from_directory(store, row.filename, max_age=MAX_AGE_S)
    else:
        name = f"{row.sha256}_{'_'.join(map(str, row.roi))}.png"
        cache = Path(current_app.config["CACHE_DIR"])
        if not (cache / name).exists():
            crop(Path(store) / row.filename, row.roi, cache / name)
        response = send_from_directory(cache, name, max_age=MAX_AGE_S)
    response.cache_control.public = False
    response.cache_control.private = True
    return response
