"""The experimenter's dashboard and exports (roles admin and experimenter only)."""

from __future__ import annotations

import io
import math
import zipfile
from collections import Counter
from dataclasses import dataclass

import pandas as pd
from flask import Blueprint, Response, abort, current_app, render_template
from sqlalchemy import select

from annotation_app.active import group_rows
from annotation_app.auth import roles_required
from annotation_app.campaigns import load_campaign_spec
from annotation_app.db import get_db
from annotation_app.export import campaign_report, count_matrices, trials_frame
from annotation_app.models import Campaign
from annotation_app.quality import (
    campaign_coverage,
    colour_scale,
    coverage,
    cross_scene_components,
    observer_quality,
)
from annotation_app.scheduler import coverage_target
from annotation_app.spec import CampaignSpec

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
    live = current_app.extensions["jodkit_live"].get(db, camp)
    target = per_scene_target(camp, spec)
    heatmaps = coverage(db, camp, [a.name for a in spec.attributes], target)
    return render_template(
        "dashboard/campaign.html",
        campaign=camp,
        spec=spec,
        coverage=heatmaps,
        total=campaign_coverage(heatmaps),
        scale=colour_scale(target),
        cross=cross_scene_components(db, camp),
        observers=observer_quality(db, camp, live.screening),
        screening_note=screening_note(live.screening),
        scales=scale_groups(live.scales),
        active=group_rows(db, camp.id) if spec.sampling == "active" else None,
    )


def per_scene_target(campaign: Campaign, spec: CampaignSpec) -> float:
    """The per-scene design's comparisons wanted per pair, as the scheduler reads it."""
    per_scene: dict[str, int] = Counter(im.scene for im in campaign.images)
    n_pairs = sum(n * (n - 1) // 2 for n in per_scene.values())
    return coverage_target(spec, len(campaign.images), n_pairs)


def screening_note(screening: pd.DataFrame | str) -> str:
    """What the outlier column means, or why it is empty."""
    if isinstance(screening, str):
        return screening
    return screening.attrs.get("jodkit", {}).get("screening", {}).get("note", "")


@dataclass
class ScaleRow:
    """One condition of a live scale as the dashboard prints it (no NaN reaches the page)."""

    condition: str
    jod: float | None
    ci: tuple[float, float] | None
    n: int
    determined: bool
    component: int


def scale_groups(scales: pd.DataFrame | str) -> list[dict] | str:
    """Per scene x attribute: rows sorted determined first, then by JOD (best first)."""
    if isinstance(scales, str):
        return scales
    out = []
    for (scene, attribute), group in scales.groupby(["scene", "attribute"], sort=True):
        rows = []
        for row in group.itertuples(index=False):
            finite = lambda v: v is not None and math.isfinite(v)  # noqa: E731
            n = int(row.n_comparisons) if finite(row.n_comparisons) else 0
            rows.append(
                ScaleRow(
                    condition=str(row.condition),
                    jod=float(row.jod) if finite(row.jod) and n > 0 else None,
                    ci=(float(row.ci_low), float(row.ci_high))
                    if finite(row.ci_low) and finite(row.ci_high) and n > 0
                    else None,
                    n=n,
                    determined=bool(row.determined) and n > 0,
                    component=int(row.component) if finite(row.component) else 0,
                )
            )
        rows.sort(key=lambda r: (not r.determined, r.jod is None, -(r.jod or 0.0)))
        components = len({r.component for r in rows if r.n > 0})
        out.append(
            {
                "scene": scene,
                "attribute": attribute,
                "rows": rows,
                "components": components,
                "has_ci": any(r.ci for r in rows),
                "undetermined": sum(not r.determined for r in rows),
            }
        )
    return out


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
