"""``sampling: active``: planned batches handed out once, the rest of the design kept."""

from __future__ import annotations

import threading
import time
from collections import Counter
from functools import partial

import pytest
from sqlalchemy import select
from werkzeug.security import generate_password_hash

from annotation_app.db import get_db
from annotation_app.models import ActiveGroup, ActivePair, Image
from annotation_app.spec import parse_spec
from scaling.errors import InputError
from tests.app.conftest import add_observer
from tests.app.test_scheduler import assert_exact_balance, trials_of

ACTIVE = "sampling: active\nactive: {target_width: 0.4}"


def _planner(app, background: bool = False):
    planner = app.extensions["jodkit_active"]
    planner.background = background
    return planner


def _rows(app, model):
    with app.app_context():
        return list(get_db().scalars(select(model)))


def _check_plan_was_followed(app) -> int:
    """Every planned pair taken at most once, by a normal trial of that very pair; no
    pair twice in one batch. Returns how many planned pairs were taken."""
    trials = {(t.session_id, t.seq): t for t in trials_of(app)}
    rows = _rows(app, ActivePair)
    batches = Counter(
        (r.session_type, r.attribute, r.scene, r.batch_no, r.image_a_id, r.image_b_id) for r in rows
    )
    assert max(batches.values()) == 1
    taken = [r for r in rows if r.session_id is not None]
    assert len({(r.session_id, r.seq) for r in taken}) == len(taken)
    for r in taken:
        trial = trials[r.session_id, r.seq]
        assert trial.kind == "normal"
        assert (trial.image_a_id, trial.image_b_id) == (r.image_a_id, r.image_b_id)
    return len(taken)


def _record_takes(planner, monkeypatch) -> list[tuple[int, int, int, int]]:
    """(session, seq, image A, image B) of every pair the plan hands to the scheduler."""
    handed_out: list[tuple[int, int, int, int]] = []
    take, lock = planner.take, threading.Lock()

    def recording_take(db, sess, seq, *args, **kwargs):
        pair = take(db, sess, seq, *args, **kwargs)
        if pair is not None:
            with lock:
                handed_out.append((sess.id, seq, *pair))
        return pair

    monkeypatch.setattr(planner, "take", recording_take)
    return handed_out


def test_normal_trials_come_from_the_plan_with_the_rest_of_the_design(
    app, campaign, login, run_session
):
    cid = campaign(extra=ACTIVE, gold=0.2, repeat=0.2, training=2, length=16)
    planner = _planner(app)
    planned = planner.refresh(cid)
    assert {(k.session_type, k.scene) for k in planned} == {
        ("per_scene", "s1"),
        ("per_scene", "s2"),
        ("per_scene", "s3"),
        ("cross_content", ""),
    }
    groups = {g.scene: g for g in _rows(app, ActiveGroup)}
    assert groups["s1"].batch_size == 3 and groups["s1"].interval_width > 0
    assert not groups["s1"].done and groups["s1"].further_judgments is None  # no data yet
    for name in ("obs1", "obs2"):
        run_session(login(name), cid)
        planner.refresh(cid)
    trials = trials_of(app)
    kinds = assert_exact_balance(trials)
    assert kinds["training"] == 4 and kinds["gold"] > 0 and kinds["repeat"] > 0
    assert _check_plan_was_followed(app) >= 6
    # max_per_observer (1): a planned pair never goes to an observer who has judged it
    for row in (r for r in _rows(app, ActivePair) if r.session_id is not None):
        taker = next(t for t in trials if (t.session_id, t.seq) == (row.session_id, row.seq))
        earlier = [
            t
            for t in trials
            if t.user_id == taker.user_id
            and t.kind == "normal"
            and t.id < taker.id
            and (t.image_a_id, t.image_b_id) == (row.image_a_id, row.image_b_id)
        ]
        assert not earlier
    assert max(g.batch_no for g in _rows(app, ActiveGroup) if g.scene) >= 2
    with app.app_context():
        status = get_db().scalar(select(ActiveGroup).where(ActiveGroup.scene == "s1"))
        assert status.n_answered > 0 and status.further_judgments > 0


def test_cross_content_sessions_take_the_alignment_plan(app, campaign, login, run_session):
    cid = campaign(extra=ACTIVE, length=8)
    _planner(app).refresh(cid)
    run_session(login("obs1"), cid, "cross_content")
    trials = trials_of(app)
    assert all(t.scenes[0] != t.scenes[1] for t in trials)
    taken = [r for r in _rows(app, ActivePair) if r.session_id is not None]
    assert taken and {r.session_type for r in taken} == {"cross_content"}
    _check_plan_was_followed(app)


def test_without_a_plan_the_balanced_design_serves(app, campaign, login, run_session):
    cid = campaign(extra=ACTIVE, length=6)
    _planner(app)  # no background thread, no refresh: nothing planned
    run_session(login("obs1"), cid)
    assert len(trials_of(app)) == 6 and not _rows(app, ActivePair)


def test_fifty_concurrent_observers_never_share_a_planned_pair(app, campaign, login, monkeypatch):
    """Fifty observers answer at once while the background thread replans: each planned
    pair goes to one trial only, the sides stay balanced, nothing fails."""
    # Their passwords with a cheap hash: fifty scrypt logins would be most of the test.
    monkeypatch.setattr(
        "annotation_app.models.generate_password_hash",
        partial(generate_password_hash, method="pbkdf2:sha256:1"),
    )
    cid = campaign(extra=ACTIVE, length=4, repeat=0.25)
    planner = _planner(app, background=True)
    handed_out = _record_takes(planner, monkeypatch)
    names = [f"par{k}" for k in range(50)]
    for name in names:
        add_observer(app, name, cid)
    browsers = [login(name) for name in names]
    planner.refresh(cid)
    errors: list[str] = []

    def observe(obs) -> None:
        try:
            sid = obs.start(cid)
            while trials := obs.next(sid)["trials"]:
                response = obs.answer(trials[0]["id"])
                if response.status_code != 200:
                    errors.append(response.get_data(as_text=True))
        except Exception as err:  # reported below
            errors.append(repr(err))

    threads = [threading.Thread(target=observe, args=(obs,)) for obs in browsers]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=600)
        assert not errors, errors[:3]
        trials = trials_of(app)
        assert len(trials) == 200
        assert_exact_balance(trials)
        taken = _check_plan_was_followed(app)
        assert taken > 0
        # every pair the plan handed out is one planned row, taken by that trial only
        assert len(handed_out) == taken
        assert set(handed_out) == {
            (r.session_id, r.seq, r.image_a_id, r.image_b_id)
            for r in _rows(app, ActivePair)
            if r.session_id is not None
        }
        deadline = time.monotonic() + 30
        while max(g.batch_no for g in _rows(app, ActiveGroup)) < 2:  # replanned meanwhile
            assert time.monotonic() < deadline
            time.sleep(0.2)
    finally:
        planner.stop()


def test_dashboard_shows_each_groups_width_prediction_and_state(app, campaign, login, run_session):
    cid = campaign(extra="sampling: active\nactive: {target_width: 50}", length=6)
    planner = _planner(app)
    planner.refresh(cid)
    run_session(login("obs1"), cid)
    planner.refresh(cid)
    page = login("exp").client.get(f"/dashboard/{cid}").get_data(as_text=True)
    assert "Active sampling" in page and "cross-content" in page
    assert page.count(">done<") == 4  # a 50 JOD target: every group is done at once
    with app.app_context():
        assert get_db().scalar(select(Image.id).limit(1)) is not None


def test_dashboard_rows_give_the_groups_stored_status(app, campaign, login, run_session):
    cid = campaign(extra=ACTIVE, length=12)
    planner = _planner(app)
    planner.refresh(cid)
    run_session(login("obs1"), cid)
    planner.refresh(cid)
    page = login("exp").client.get(f"/dashboard/{cid}").get_data(as_text=True)
    groups = [g for g in _rows(app, ActiveGroup) if g.scene]
    assert groups and all(g.further_judgments and not g.done for g in groups)
    for g in groups:  # scene, attribute, conditions, answered, width now, judgments to target
        row = (
            f"<td>{g.scene}</td><td>{g.attribute}</td><td>{g.n_conditions}</td>"
            f"<td>{g.n_answered}</td>\n      <td>{g.interval_width:.2f}</td>\n"
            f"      <td>{g.further_judgments:.0f}</td>"
        )
        assert row in page
    assert page.count(">sampling<") == 4


def test_balanced_campaigns_show_no_active_section(app, campaign, login):
    cid = campaign(length=6)
    page = login("exp").client.get(f"/dashboard/{cid}").get_data(as_text=True)
    assert "Active sampling" not in page


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ("sampling: smart", "sampling"),
        ("sampling: active\nactive: {target_width: -1}", "active.target_width"),
        ("sampling: active\nactive: {replan_after: 2}", "active.replan_after"),
        ("active: {targetwidth: 1}", "active.targetwidth"),
    ],
)
def test_bad_sampling_options_name_their_key(make_spec, extra, field):
    text = make_spec(extra=extra).read_text()
    with pytest.raises(InputError, match=rf"field '{field}'"):
        parse_spec(text)


def test_planned_pairs_skip_an_observer_at_the_cap(app, campaign, login, run_session):
    """max_per_observer: 1. Once the observer has judged every pair, no planned pair may go
    to them: the plan waits for other observers, the balanced design serves them."""
    cid = campaign(extra=ACTIVE, length=18)
    planner = _planner(app)
    planner.refresh(cid)
    obs = login("obs1")
    first = run_session(obs, cid)
    judged = {(t.image_a_id, t.image_b_id) for t in trials_of(app) if t.kind == "normal"}
    assert len(judged) == 18  # every within-scene pair once
    assert planner.refresh(cid)  # new batches, made of pairs this observer has judged
    second = run_session(obs, cid)
    assert second != first
    taken = {r.session_id for r in _rows(app, ActivePair) if r.session_id is not None}
    assert first in taken and second not in taken
