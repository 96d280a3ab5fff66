"""Serving campaign images: region-of-interest crops for display, originals on demand.

Files are looked up by database id and served only from the campaign image store through
werkzeug's ``safe_join``, so no URL can reach a file outside it. Crops are made once and
cached under ``CACHE_DIR``.
"""

from __future__ import annotations

from pathlib import Path
from uuid import uuid4

from flask import Blueprint, abort, current_app, request, send_from_directory
from flask_login import login_required
from PIL import Image as PILImage
from werkzeug.security import safe_join

from annotation_app.campaigns import load_campaign_spec
from annotation_app.db import get_db
from annotation_app.models import Image

bp = Blueprint("media", __name__, url_prefix="/media")


def crop_to_display(source: Path, roi: list[int], size: int, target: Path) -> None:
    """Crop ``roi`` (x, y, w, h) and scale it to fit a ``size`` x ``size`` box."""
    x, y, w, h = roi
    with PILImage.open(source) as im:
        crop = im.convert("RGB").crop((x, y, x + w, y + h))
    scale = size / max(w, h)
    crop = crop.resize((max(1, round(w * scale)), max(1, round(h * scale))), PILImage.LANCZOS)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f"{target.stem}.{uuid4().hex}.tmp")
    crop.save(tmp, format="PNG")
    tmp.replace(target)  # atomic: concurrent requests never see half a file


@bp.get("/<int:image_id>")
@login_required
def image(image_id: int):
    """The display version (ROI crop when the spec gives one) or, with view=original, the file."""
    db = get_db()
    row = db.get(Image, image_id) or abort(404)
    store = current_app.config["IMAGE_STORE"]
    if safe_join(store, row.filename) is None:
        abort(404)
    if row.roi is None or request.args.get("view") == "original":
        return send_from_directory(store, row.filename, max_age=86400)
    size = load_campaign_spec(row.campaign).display.size
    name = f"{row.sha256}_{'_'.join(map(str, row.roi))}_{size}.png"
    cache = Path(current_app.config["CACHE_DIR"])
    if not (cache / name).exists():
        crop_to_display(Path(store) / row.filename, row.roi, size, cache / name)
    return send_from_directory(cache, name, max_age=86400)
