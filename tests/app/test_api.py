"""The JSON API on SQLite and PostgreSQL: answers stored exactly once, bad input refused."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import func, select

from annotation_app.db import get_db
from annotation_app.models import Trial


def answered(app) -> int:
    with app.app_context():
        return get_db().scalar(select(func.count()).where(Trial.answered_at.is_not(None)))


def test_answer_flow_and_progress(app, campaign, login):
    cid = campaign()
    obs = login("obs1")
    sid = obs.start(cid)
    body = obs.next(sid)
    assert len(body["trials"]) == 2  # current + prefetched
    assert body["progress"] == {
        "answered": 0,
        "planned": 12,
        "finished": False,
        "break_until": None,
        "campaign": "active",
    }
    first = body["trials"][0]
    assert set(first) == {"id", "seq", "training", "left", "right"}  # kind stays hidden
    response = obs.answer(first["id"], "left")
    assert response.status_code == 200
    reply = response.get_json()
    assert reply["status"] == "stored" and reply["progress"]["answered"] == 1
    # the answer brings the next trials: the prefetched one first, then a new one
    assert reply["trials"][0]["id"] == body["trials"][1]["id"]
    assert reply["trials"] == obs.next(sid)["trials"]


def test_retry_and_double_click_store_once(app, campaign, login):
    cid = campaign()
    obs = login("obs1")
    trial = obs.next(obs.start(cid))["trials"][0]
    assert obs.answer(trial["id"], token="tok-12345678").get_json()["status"] == "stored"
    again = obs.answer(trial["id"], token="tok-12345678")
    assert again.status_code == 200 and again.get_json()["status"] == "duplicate"
    other = obs.answer(trial["id"], "right", token="tok-other-1234")
    assert other.status_code == 409
    with app.app_context():
        row = get_db().get(Trial, trial["id"])
        assert row.answer_token == "tok-12345678"
    assert answered(app) == 1


def test_concurrent_duplicate_submissions(app, campaign, login):
    cid = campaign()
    obs = login("obs1")
    trial = obs.next(obs.start(cid))["trials"][0]
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: obs.answer(trial["id"], token="same-token-1"), range(4)))
    statuses = sorted(r.get_json()["status"] for r in results)
    assert statuses == ["duplicate", "duplicate", "duplicate", "stored"]
    assert answered(app) == 1


def test_reload_resumes_the_same_pair(app, campaign, login):
    cid = campaign()
    obs = login("obs1")
    sid = obs.start(cid)
    first = obs.next(sid)
    assert obs.next(sid) == first  # reload: nothing re-drawn
    other_device = login("obs1")
    assert other_device.start(cid) == sid
    assert other_device.next(sid) == first


def test_bad_answers_change_nothing(app, campaign, login):
    cid = campaign(tie="false")
    obs = login("obs1")
    tid = obs.next(obs.start(cid))["trials"][0]["id"]
    cases = [
        ({"token": "short", "choice": "left", "rt_ms": 1}, "token"),
        ({"token": "x" * 20, "choice": "up", "rt_ms": 1}, "choice"),
        ({"token": "x" * 20, "choice": "left", "rt_ms": -5}, "rt_ms"),
        ({"token": "x" * 20, "choice": "tie", "rt_ms": 10}, "choice"),
    ]
    for body, field in cases:
        response = obs.post(f"/api/trials/{tid}/answer", json=body)
        assert response.status_code == 400, body
        assert response.get_json()["field"] == field
    assert obs.post(f"/api/trials/{tid}/answer", data="nope").status_code == 400
    assert answered(app) == 0


def test_csrf_required_for_json_writes(app, campaign, login):
    cid = campaign()
    obs = login("obs1")
    tid = obs.next(obs.start(cid))["trials"][0]["id"]
    response = obs.client.post(
        f"/api/trials/{tid}/answer", json={"token": "x" * 20, "choice": "left", "rt_ms": 5}
    )
    assert response.status_code == 400
    assert answered(app) == 0


def test_observer_sees_only_own_trials(app, campaign, login):
    cid = campaign()
    obs1, obs2 = login("obs1"), login("obs2")
    sid = obs1.start(cid)
    tid = obs1.next(sid)["trials"][0]["id"]
    assert obs2.client.get(f"/api/sessions/{sid}/next").status_code == 404
    assert obs2.answer(tid).status_code == 404
    assert obs2.client.get(f"/sessions/{sid}").status_code == 404
    assert answered(app) == 0


def test_session_finishes(app, campaign, login):
    cid = campaign(length=3)
    obs = login("obs1")
    sid = obs.start(cid)
    for _ in range(3):
        obs.answer(obs.next(sid)["trials"][0]["id"])
    body = obs.next(sid)
    assert body["progress"]["finished"] and body["trials"] == []
    assert obs.start(cid) != sid  # a new sitting opens after a finished one


def test_break_enforced_after_active_time(app, campaign, login):
    cid = campaign(break_after=0.02)  # 1.2 s of active time
    obs = login("obs1")
    sid = obs.start(cid)
    trials = obs.next(sid)["trials"]
    body = obs.answer(trials[0]["id"], rt_ms=2000).get_json()
    assert body["progress"]["break_until"] is not None
    assert obs.next(sid)["trials"] == []  # no pair during the break
    refused = obs.answer(trials[1]["id"])
    assert refused.status_code == 400
    assert answered(app) == 1


def test_unauthenticated_api_is_401(app, campaign):
    campaign()
    client = app.test_client()
    assert client.get("/api/sessions/1/next").status_code == 401
    assert client.get("/").status_code == 302
