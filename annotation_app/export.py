"""Exports: the long trial table of scaling/formats.py, count matrices and a report.

The trial CSV is what ``jod scale`` reads. Per-scene and cross-content trials go to
separate tables because their scene columns differ (``scene`` vs ``scene_A``/``scene_B``).
``repeat_of`` holds the 0-based row index, in the same table, of the trial it repeats.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session, aliased

from annotation_app.models import Campaign, Image, ObserverSession, Trial, User
from scaling.formats import trial_columns as canonical_trial_columns
from scaling.io import write_table
from scaling.outputs import output_file, staged


def trial_columns(session_type: str) -> list[str]:
    """Column order of the export, taken from the formats contract."""
    return list(canonical_trial_columns(cross_content=session_type != "per_scene"))


def trials_frame(db: Session, campaign: Campaign, session_type: str = "per_scene") -> pd.DataFrame:
    """Every answered trial of one session type, one row each, in answer order."""
    a, b = aliased(Image), aliased(Image)
    rows = db.execute(
        select(Trial, User.username, a.scene, a.condition, b.scene, b.condition)
        .join(ObserverSession, Trial.session_id == ObserverSession.id)
        .join(User, Trial.user_id == User.id)
        .join(a, Trial.image_a_id == a.id)
        .join(b, Trial.image_b_id == b.id)
        .where(
            Trial.campaign_id == campaign.id,
            Trial.answered_at.is_not(None),
            ObserverSession.session_type == session_type,
        )
        .order_by(Trial.answered_at, Trial.id)
    ).all()
    row_of = {t.id: i for i, (t, *_rest) in enumerate(rows)}
    records = []
    for t, username, scene_a, cond_a, scene_b, cond_b in rows:
        scenes = (
            {"scene": scene_a}
            if session_type == "per_scene"
            else {"scene_A": scene_a, "scene_B": scene_b}
        )
        answered = t.answered_at
        records.append(
            {
                "observer": username,
                "session": t.session_id,
                **scenes,
                "attribute": t.attribute,
                "condition_A": cond_a,
                "condition_B": cond_b,
                "is_A_selected": int(bool(t.is_a_selected)),
                "tie": int(t.tie),
                "left_shown": t.left_shown,
                "rt_ms": t.rt_ms,
                "is_gold": int(t.kind == "gold"),
                "is_training": int(t.kind == "training"),
                "repeat_of": row_of.get(t.repeat_of_id, pd.NA) if t.repeat_of_id else pd.NA,
                "timestamp": answered.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            }
        )
    frame = pd.DataFrame.from_records(records, columns=trial_columns(session_type))
    frame["repeat_of"] = frame["repeat_of"].astype("Int64")
    frame["rt_ms"] = frame["rt_ms"].astype("Int64")
    return frame


def count_matrices(trials: pd.DataFrame) -> dict[tuple[str, str], pd.DataFrame]:
    """Per (scene, attribute): M[i, j] = times i preferred over j (ties and training left out)."""
    used = trials[(trials["tie"] == 0) & (trials["is_training"] == 0)]
    out = {}
    for (scene, attribute), group in used.groupby(["scene", "attribute"], sort=True):
        names = sorted(set(group["condition_A"]) | set(group["condition_B"]))
        matrix = pd.DataFrame(
            np.zeros((len(names), len(names)), dtype=int), index=names, columns=names
        )
        for row in group.itertuples(index=False):
            win, lose = (
                (row.condition_A, row.condition_B)
                if row.is_A_selected
                else (row.condition_B, row.condition_A)
            )
            matrix.loc[win, lose] += 1
        out[scene, attribute] = matrix
    return out


def write_export(db: Session, campaign: Campaign, out_dir: Path) -> list[Path]:
    """Write trials CSVs (+ ``.meta.json`` sidecars), count matrices and a report; return
    the tables and the report. All appear together, only once every one is complete."""
    written = []
    per_scene = trials_frame(db, campaign, "per_scene")
    with staged():
        for session_type, frame in (
            ("per_scene", per_scene),
            ("cross_content", trials_frame(db, campaign, "cross_content")),
        ):
            meta = {
                "campaign": campaign.name,
                "spec_sha256": campaign.spec_hash,
                "session_type": session_type,
                "n_trials": len(frame),
                "repeat_of": "0-based row index of the repeated trial in this file",
            }
            written.append(write_table(frame, out_dir / f"trials_{session_type}.csv", meta))
        for (scene, attribute), matrix in count_matrices(per_scene).items():
            path = out_dir / "counts" / f"{scene}__{attribute}.csv"
            with output_file(path) as temporary:
                matrix.to_csv(temporary)
            written.append(path)
        report = out_dir / "report.md"
        with output_file(report) as temporary:
            temporary.write_text(campaign_report(campaign, per_scene))
        written.append(report)
    return written


def campaign_report(campaign: Campaign, per_scene: pd.DataFrame) -> str:
    """A short Markdown summary: what was collected, by whom."""
    lines = [
        f"# Campaign {campaign.name}",
        "",
        f"- spec SHA-256: `{campaign.spec_hash}`",
        f"- images: {len(campaign.images)} in {len({im.scene for im in campaign.images})} scenes",
        f"- per-scene trials answered: {len(per_scene)}"
        f" ({int(per_scene['is_training'].sum()) if len(per_scene) else 0} training,"
        f" {int(per_scene['tie'].sum()) if len(per_scene) else 0} ties)",
        f"- observers: {per_scene['observer'].nunique() if len(per_scene) else 0}",
        "",
        "| observer | trials | median rt (ms) | left-choice rate |",
        "|---|---|---|---|",
    ]
    for observer, group in per_scene.groupby("observer"):
        chose_left = (group["is_A_selected"] == 1) == (group["left_shown"] == "A")
        lines.append(
            f"| {observer} | {len(group)} | {group['rt_ms'].median():.0f} |"
            f" {chose_left[group['tie'] == 0].mean():.2f} |"
        )
    return "\n".join(lines) + "\n"
