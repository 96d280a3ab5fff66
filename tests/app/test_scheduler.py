"""The design: exact counterbalancing, per-observer caps, interleaving, hidden checks."""

from __future__ import annotations

from collections import Counter
from itertools import pairwise

from sqlalchemy import select

from annotation_app.db import get_db
from annotation_app.models import Image, PairCount, Trial
from tests.app.conftest import add_observer


def trials_of(app) -> list[Trial]:
    with app.app_context():
        db = get_db()
        rows = list(db.scalars(select(Trial).order_by(Trial.id)))
        scene = {im.id: im.scene for im in db.scalars(select(Image))}
        for t in rows:
            t.scenes = (scene[t.image_a_id], scene[t.image_b_id])
        return rows


def assert_exact_balance(trials: list[Trial]) -> Counter:
    """Exact counterbalancing as docs/annotation.md defines it; returns the trial kinds.

    Over the design trials (normal and repeat, everything exported for scaling except gold
    and training) each pair's A-left and B-left counts differ by at most one; every repeat
    shows its original's pair on the other side; so the normal trials that were not
    repeated are balanced to within one as well.
    """
    by_id = {t.id: t for t in trials}
    design = [t for t in trials if t.kind in ("normal", "repeat")]
    repeated = {t.repeat_of_id for t in design if t.kind == "repeat"}
    every: dict[tuple[int, int], Counter] = {}
    unrepeated: dict[tuple[int, int], Counter] = {}
    for t in design:
        pair = (t.image_a_id, t.image_b_id)
        every.setdefault(pair, Counter())[t.left_shown] += 1
        if t.kind == "repeat":
            original = by_id[t.repeat_of_id]
            assert original.kind == "normal"
            assert (original.image_a_id, original.image_b_id) == pair
            assert t.left_shown != original.left_shown
        elif t.id not in repeated:
            unrepeated.setdefault(pair, Counter())[t.left_shown] += 1
    assert all(abs(c["A"] - c["B"]) <= 1 for c in every.values()), every
    assert all(abs(c["A"] - c["B"]) <= 1 for c in unrepeated.values()), unrepeated
    return Counter(t.kind for t in trials)


def test_counterbalanced_capped_and_interleaved(app, campaign, login, run_session):
    cid = campaign(length=18)
    for name in ("obs1", "obs2"):
        run_session(login(name), cid)
    trials = trials_of(app)
    assert len(trials) == 36
    sides: dict[tuple[int, int], Counter] = {}
    for t in trials:
        assert t.scenes[0] == t.scenes[1]  # per-scene: within one scene
        sides.setdefault((t.image_a_id, t.image_b_id), Counter())[t.left_shown] += 1
    assert_exact_balance(trials)
    assert len(sides) == 18  # 3 scenes x 6 pairs, all covered
    per_observer = Counter((t.user_id, t.image_a_id, t.image_b_id) for t in trials)
    assert max(per_observer.values()) == 1  # max_per_observer: 1
    for user in {t.user_id for t in trials}:
        mine = [t for t in trials if t.user_id == user]
        assert all(a.scenes[0] != b.scenes[0] for a, b in pairwise(mine))


def test_exact_balance_with_repeats(app, campaign, login):
    """Repeats always swap sides, so placing them blindly let a pair's counts drift to
    two apart; they are counted and placed so that the counts stay within one."""
    cid = campaign(repeat=0.4, length=24)
    for i in range(3, 9):
        add_observer(app, f"obs{i}", cid)
    # Round robin, one answer each: sittings overlap, so a pair's original can wait for
    # its repeat while other observers' trials of the same pair are planned.
    sittings = [(obs, obs.start(cid)) for obs in (login(f"obs{i}") for i in range(1, 9))]
    while sittings:
        for obs, sid in list(sittings):
            if trials := obs.next(sid)["trials"]:
                assert obs.answer(trials[0]["id"]).status_code == 200
            else:
                sittings.remove((obs, sid))
    trials = trials_of(app)
    kinds = assert_exact_balance(trials)
    assert kinds["repeat"] >= 8 * 24 * 0.2  # repeats still come at about their rate
    with app.app_context():
        rows = list(get_db().scalars(select(PairCount).where(PairCount.campaign_id == cid)))
    assert all(abs(row.left_a - row.left_b) <= 1 for row in rows)


def test_golden_repeat_and_training_trials(app, campaign, login, run_session):
    cid = campaign(gold=0.3, repeat=0.3, training=2, length=20)
    run_session(login("obs1"), cid)
    trials = trials_of(app)
    kinds = Counter(t.kind for t in trials)
    assert kinds["gold"] > 0 and kinds["repeat"] > 0
    assert_exact_balance(trials)
    assert [t.kind for t in trials[:2]] == ["training", "training"]
    by_id = {t.id: t for t in trials}
    for t in trials:
        if t.kind == "repeat":
            original = by_id[t.repeat_of_id]
            assert (t.image_a_id, t.image_b_id) == (original.image_a_id, original.image_b_id)
            assert t.left_shown != original.left_shown  # sides swapped
        if t.kind == "gold":
            assert t.gold_expect_a is not None


def test_cross_content_pairs_span_scenes(app, campaign, login, run_session):
    cid = campaign(length=10)
    run_session(login("obs1"), cid, "cross_content")
    trials = trials_of(app)
    assert len(trials) == 10
    assert all(t.scenes[0] != t.scenes[1] for t in trials)
    used = {i for t in trials for i in (t.image_a_id, t.image_b_id)}
    assert len(used) <= 6  # images_per_scene: 2, three scenes


def test_training_only_in_the_first_sitting(app, campaign, login, run_session):
    cid = campaign(training=2, length=4)
    obs = login("obs1")
    first = run_session(obs, cid)
    second = run_session(obs, cid)
    assert first != second
    trials = trials_of(app)
    kinds = {sid: [t.kind for t in trials if t.session_id == sid] for sid in (first, second)}
    assert kinds[first][:2] == ["training", "training"] and len(kinds[first]) == 6
    assert "training" not in kinds[second] and len(kinds[second]) == 4


def test_pair_counts_follow_the_trials(app, campaign, login, run_session):
    cid = campaign(repeat=0.2, length=15)
    run_session(login("obs1"), cid)
    run_session(login("obs2"), cid)
    design = Counter(
        (t.image_a_id, t.image_b_id, t.left_shown)
        for t in trials_of(app)
        if t.kind in ("normal", "repeat")
    )
    with app.app_context():
        rows = list(get_db().scalars(select(PairCount).where(PairCount.campaign_id == cid)))
    kept = Counter()
    for row in rows:
        assert row.planned == row.left_a + row.left_b
        kept[row.image_a_id, row.image_b_id, "A"] += row.left_a
        kept[row.image_a_id, row.image_b_id, "B"] += row.left_b
    assert +kept == design


def _close_vs_far(app, campaign, login, run_session, prefer_close) -> tuple[int, int]:
    """Times the closest and the farthest pair of scene s1 were planned in 54 trials
    (18 pairs, target 2 per pair: the third round goes beyond the target)."""
    cid = campaign(length=54, extra=f"prefer_close: {prefer_close}" if prefer_close else "")
    with app.app_context():
        ids = {
            (im.scene, im.condition): im.id
            for im in get_db().scalars(select(Image).where(Image.campaign_id == cid))
        }
    jod = {"c0": 0.0, "c1": 0.1, "c2": 3.0, "c3": 6.0}
    scores = {ids["s1", c]: v for c, v in jod.items()}
    app.extensions["jodkit_scheduler"].scores = lambda _cid, _attribute=None: scores
    run_session(login("obs1"), cid)
    pairs = Counter((t.image_a_id, t.image_b_id) for t in trials_of(app))
    return pairs[ids["s1", "c0"], ids["s1", "c1"]], pairs[ids["s1", "c0"], ids["s1", "c3"]]


def test_prefer_close_compares_close_conditions_more_often(app, campaign, login, run_session):
    close, far = _close_vs_far(app, campaign, login, run_session, prefer_close=1.0)
    assert far >= 1  # every pair is still compared (coverage first) ...
    assert close > far  # ... and beyond that, the close pair more often


def test_without_prefer_close_coverage_stays_even(app, campaign, login, run_session):
    close, far = _close_vs_far(app, campaign, login, run_session, prefer_close=None)
    assert close == far
