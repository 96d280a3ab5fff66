"""The experimenter's dashboard and exports (roles admin and experimenter only)."""

from __future__ import annotations

import io
import zipfile

from flask import Blueprint, Response, abort, current_app, render_template
from sqlalchemy import select

from annotation_app.auth import roles_required
from annotation_app.campaigns import load_campaign_spec
from annotation_app.db import get_db
from annotation_app.export import campaign_report, count_matrices, trials_frame
from annotation_app.models import Campaign
from annotation_app.quality import coverage, cross_scene_components, observer_quality

bp = Blueprint("dashboard", __name__, url_prefix="/dashboard")
STAFF = ("admin", "experimenter")


@bp.get("/")
@roles_required(*STAFF)
def index():
    """All campaigns."""
    campaigns = list(get_db().scalars(select(Campaign).order_by(Campaign.id)))
    return render_template("dashboard/index.html", campaigns=campaigns)


@bp.get("/<int:campaign_id>")
@roles_required(*STAFF)
def campaign(campaign_id: int):
    """Coverage heatmaps, connectivity, observer quality and live JOD scales."""
    db = get_db()
    camp = db.get(Campaign, campaign_id) or abort(404)
    spec = load_campaign_spec(camp)
    scales = current_app.extensions["jodkit_live"].table(db, camp)
    return render_template(
        "dashboard/campaign.html",
        campaign=camp,
        spec=spec,
        coverage=coverage(db, camp, [a.name for a in spec.attributes]),
        cross=cross_scene_components(db, camp),
        observers=observer_quality(db, camp),
        scales=scales,
    )


@bp.get("/<int:campaign_id>/export/<name>")
@roles_required(*STAFF)
def export(campaign_id: int, name: str):
    """trials_per_scene.csv, trials_cross_content.csv, counts.zip or report.md."""
    db = get_db()
    camp = db.get(Campaign, campaign_id) or abort(404)
    if name in ("trials_per_scene.csv", "trials_cross_content.csv"):
        frame = trials_frame(db, camp, name.removeprefix("trials_").removesuffix(".csv"))
        return _download(frame.to_csv(index=False), name, "text/csv")
    if name == "counts.zip":
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            for (scene, attribute), matrix in count_matrices(trials_frame(db, camp)).items():
                archive.writestr(f"{scene}__{attribute}.csv", matrix.to_csv())
        return _download(buffer.getvalue(), name, "application/zip")
    if name == "report.md":
        return _download(campaign_report(camp, trials_frame(db, camp)), name, "text/markdown")
    abort(404)


def _download(body: str | bytes, name: str, mimetype: str) -> Response:
    return Response(
        body, mimetype=mimetype, headers={"Content-Disposition": f"attachment; filename={name}"}
    )
