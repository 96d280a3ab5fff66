"""The dashboard: outlier scores per observer, live scales without NaN, undetermined marked."""

from __future__ import annotations

import math

import pandas as pd
from sqlalchemy import select

from annotation_app.dashboard import scale_groups
from annotation_app.db import get_db
from annotation_app.models import Image
from tests.app.conftest import add_observer, sides


def answer_truthfully(app, obs, cid: int, n: int, flip: bool = False) -> None:
    """Answer n trials preferring the less noisy image (lower condition index), or the
    noisier one when ``flip`` (an observer who has the scale upside down)."""
    with app.app_context():
        rank = {
            im.id: int(im.condition[1:])
            for im in get_db().scalars(select(Image).where(Image.campaign_id == cid))
        }
    sid = obs.start(cid)
    for _ in range(n):
        trials = obs.next(sid)["trials"]
        if not trials:  # sitting finished: open the next one
            sid = obs.start(cid)
            trials = obs.next(sid)["trials"]
        trial = trials[0]
        left, right = sides(app, trial["id"])
        left_better = rank[left] < rank[right]
        choice = "left" if left_better != flip else "right"
        assert obs.answer(trial["id"], choice).status_code == 200


def fill(app, campaign, login) -> int:
    """Three observers x 30 trials through the API; obs3 answers the wrong way round."""
    cid = campaign(length=30, tie="false")
    add_observer(app, "obs3", cid)
    for name, flip in (("obs1", False), ("obs2", False), ("obs3", True)):
        answer_truthfully(app, login(name), cid, 30, flip)
    return cid


def test_dashboard_with_outlier_scores_and_scales(app, campaign, login):
    cid = fill(app, campaign, login)
    page = login("exp").client.get(f"/dashboard/{cid}").get_data(as_text=True)
    assert "outlier score" in page and "honest observers" in page  # the few-trials note
    assert "nan" not in page.lower().replace("nano", "")
    observers = page[page.index('id="observers"') : page.index('id="scales"')]
    scores = {
        row.split("</td>")[0]: float(row.split("<td>")[-1].split(" ")[0].split("<")[0])
        for row in observers.split("<tr")[2:]
        if "<td>" in row
        for row in [row.split("<td>", 1)[1]]
    }
    assert set(scores) == {"obs1", "obs2", "obs3"}
    assert max(scores, key=scores.get) == "obs3"  # the upside-down observer stands out
    assert "Live JOD scales" in page and "95% CI" in page


def test_scale_groups_never_print_nan_and_mark_undetermined():
    table = pd.DataFrame(
        {
            "scene": ["s"] * 4,
            "attribute": ["a"] * 4,
            "condition": ["c0", "c1", "c2", "c3"],
            "jod": [0.5, -0.5, 3.0, math.nan],
            "jod_std": [math.nan] * 4,
            "ci_low": [0.1, -0.9, math.nan, math.nan],
            "ci_high": [0.9, -0.1, math.nan, math.nan],
            "n_comparisons": [4, 4, 2, 0],
            "n_wins": [3, 1, 2, 0],
            "n_losses": [1, 3, 0, 0],
            "component": [0, 0, 1, 2],
            "determined": [True, True, False, False],
        }
    )
    (group,) = scale_groups(table)
    assert [r.condition for r in group["rows"]] == ["c0", "c1", "c2", "c3"]
    assert group["rows"][3].jod is None and group["rows"][3].ci is None
    assert not group["rows"][2].determined and group["components"] == 2
    assert group["has_ci"] and group["undetermined"] == 2


def test_cross_scene_line_is_neutral_without_cross_content_trials(app, campaign, login):
    cid = campaign(length=6)
    staff = login("exp")
    page = staff.client.get(f"/dashboard/{cid}").get_data(as_text=True)
    line = page[page.index('id="cross"') : page.index("</p>", page.index('id="cross"'))]
    assert '<span class="neutral">no cross-content comparisons yet</span>' in line
    assert "components" not in line and "bad" not in line
    assert "no comparisons yet" in page  # per-scene heatmaps without answers: not red either

    obs = login("obs1")
    sid = obs.start(cid, "cross_content")
    while trials := obs.next(sid)["trials"]:
        assert obs.answer(trials[0]["id"]).status_code == 200
    page = staff.client.get(f"/dashboard/{cid}").get_data(as_text=True)
    line = page[page.index('id="cross"') : page.index("</p>", page.index('id="cross"'))]
    assert "no cross-content comparisons yet" not in line
    assert '<span class="ok">connected</span>' in line or "components of 3 scenes" in line
