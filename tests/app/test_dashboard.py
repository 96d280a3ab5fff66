"""The dashboard: outlier scores per observer, live scales without NaN, undetermined marked."""

from __future__ import annotations

import math
import re

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
    scores = {}
    for row in re.findall(r"<tr[^>]*><td>(.*?)</tr>", observers, re.S):
        cells = re.findall(r"(?:^|<td[^>]*>)(.*?)</td>", row, re.S)
        scores[cells[0]] = float(cells[6]) if cells[6] != "—" else math.nan
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
    assert "all 3 scenes linked" in line or "components of 3 scenes" in line


def test_one_colour_scale_per_campaign_with_the_target_marked(app, campaign, login):
    """Before: each heatmap coloured against its own maximum (a golden pair's 16 washed out
    the 2s), no legend, no target, 'connected' in green while pairs were below target."""
    cid = campaign(length=24, gold=0.5, tie="false")  # golden pairs: s1 c0-c3, often
    for name in ("obs1", "obs2"):
        answer_truthfully(app, login(name), cid, 24)
    page = login("exp").client.get(f"/dashboard/{cid}").get_data(as_text=True)
    classes = {}
    for scene, table in re.findall(
        r'data-scene="(s\d)".*?<table class="heat">(.*?)</table>', page, re.S
    ):
        for cls, n in re.findall(r'<td class="n(\d+)[^"]*" title="(\d+) comparisons"', table):
            classes.setdefault(int(n), set()).add((int(cls), scene))
    peak = max(classes)
    assert peak >= 6  # the golden pair, far above the target of 2
    for n, seen in classes.items():
        assert {cls for cls, _ in seen} == {min(n, 4)}  # same count, same colour, everywhere
    legend = page[page.index('id="legend"') :]
    legend = legend[: legend.index("</div>")]
    assert "2 ◀ target" in legend and "≥4" in legend  # clipped at twice the target
    style = re.search(r"<style nonce=[^>]+>(.*?)</style>", page, re.S).group(1)
    assert len(re.findall(r"td\.n\d+", style)) == 5  # counts 0..4: one scale
    total = re.search(r'<p id="total">(.*?)</p>', page, re.S).group(1)
    assert "Target: <strong>2 comparisons per pair</strong>" in total
    assert re.search(r"\d+ of 18 pairs at target", total)
    assert '<span class="ok">connected</span>' not in page


def test_suspicious_observers_are_flagged_with_the_reason(app, campaign, login):
    """Before: an observer choosing left every time with 0% repeat agreement, or answering
    in 36 ms, was not flagged."""
    cid = campaign(length=40, repeat=0.3, tie="false")
    add_observer(app, "lefty", cid)
    add_observer(app, "hasty", cid)
    lefty, hasty = login("lefty"), login("hasty")
    sid_l, sid_h = lefty.start(cid), hasty.start(cid)
    while trials := lefty.next(sid_l)["trials"]:
        assert lefty.answer(trials[0]["id"], "left", rt_ms=900).status_code == 200
    while trials := hasty.next(sid_h)["trials"]:
        left, right = sides(app, trials[0]["id"])
        choice = "left" if left < right else "right"  # consistent, but far too quick
        assert hasty.answer(trials[0]["id"], choice, rt_ms=36).status_code == 200
    answer_truthfully(app, login("obs1"), cid, 40)
    page = login("exp").client.get(f"/dashboard/{cid}").get_data(as_text=True)
    observers = page[page.index('id="observers"') : page.index('id="scales"')]
    rows = dict(re.findall(r"<tr[^>]*><td>(\w+)</td>(.*?)</tr>", observers, re.S))
    assert "chose left 100% of 40 times" in rows["lefty"]
    assert "median decision time 36 ms" in rows["hasty"]
    assert "chose left" not in rows["hasty"]
    assert '<td class="reasons"><span class="muted">—</span>' in rows["obs1"]


def test_suspicions_one_reason_per_failed_check():
    from annotation_app.quality import suspicions

    assert suspicions([True, False] * 20, [True] * 5, [True] * 5, 800, 0.2, False) == []
    reasons = suspicions([True] * 40, [False] * 5, [False] * 4 + [True], 36, 2.5, True)
    assert len(reasons) == 5
    assert reasons[0].startswith("chose left 100% of 40 times (p = ")
    assert reasons[1] == "repeated pairs answered alike 0% of 5 times (chance: 50%)"
    assert reasons[2] == "golden pairs right 1 of 5 times"
    assert reasons[3] == "median decision time 36 ms (< 300 ms)"
    assert reasons[4].startswith("outlier score dist_L 2.50")
    # too few answers to judge: nothing flagged
    assert suspicions([True] * 9, [False] * 3, [False] * 3, None, None, False) == []
