"""Exports in the METHODS layout, role checks, image serving confined to the store."""

from __future__ import annotations

import io
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image as PILImage

from annotation_app.db import get_db
from annotation_app.models import Image
from scaling.formats import TRIAL_REQUIRED
from tests.app.conftest import sides


def test_trial_csv_layout_and_counts(app, campaign, login, run_session):
    cid = campaign(training=1, repeat=0.3, length=10)
    run_session(login("obs1"), cid, choice="left")
    exp = login("exp")
    csv = exp.client.get(f"/dashboard/{cid}/export/trials_per_scene.csv")
    assert csv.status_code == 200
    frame = pd.read_csv(io.StringIO(csv.get_data(as_text=True)))
    assert list(frame.columns) == [
        "observer", "session", "scene", "attribute", "condition_A", "condition_B",
        "is_A_selected", "tie", "left_shown", "rt_ms", "is_gold", "is_training",
        "repeat_of", "timestamp",
    ]  # fmt: skip
    assert set(TRIAL_REQUIRED) <= set(frame.columns)
    assert len(frame) == 11  # 10 + 1 training trial, flagged
    assert frame["is_training"].tolist() == [1] + [0] * 10
    # "left" chosen every time: A selected exactly when A was on the left
    assert (frame["is_A_selected"] == (frame["left_shown"] == "A")).all()
    for i, row in frame.dropna(subset=["repeat_of"]).iterrows():
        original = frame.loc[int(row["repeat_of"])]
        assert int(row["repeat_of"]) < i
        assert (original["condition_A"], original["condition_B"]) == (
            row["condition_A"],
            row["condition_B"],
        )
    report = exp.client.get(f"/dashboard/{cid}/export/report.md").get_data(as_text=True)
    assert "| obs1 | 11 |" in report
    assert exp.client.get(f"/dashboard/{cid}/export/counts.zip").status_code == 200
    assert exp.client.get(f"/dashboard/{cid}/export/../../etc").status_code == 404


def test_dashboard_requires_staff_role(app, campaign, login, run_session):
    cid = campaign()
    run_session(login("obs1"), cid)
    obs = login("obs2")
    assert obs.client.get(f"/dashboard/{cid}").status_code == 403
    assert obs.client.get(f"/dashboard/{cid}/export/trials_per_scene.csv").status_code == 403
    page = login("exp").client.get(f"/dashboard/{cid}")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "Comparisons per pair" in html and "obs1" in html


def test_image_serving_stays_in_store(app, campaign, login, tmp_path):
    cid = campaign()
    obs = login("obs1")
    trial = obs.next(obs.start(cid))["trials"][0]
    assert obs.client.get(trial["left"]["src"]).status_code == 200
    for url in ("/media/..%2F..%2Fetc%2Fpasswd", "/media/../../etc/passwd", "/media/%2e%2e/x"):
        assert obs.client.get(url).status_code == 404
    secret = tmp_path / "secret.txt"
    secret.write_text("nope")
    left, _right = sides(app, trial["id"])
    with app.app_context():
        db = get_db()
        row = db.get(Image, left)
        row.filename = "../secret.txt"  # a tampered row must not reach outside the store
        db.commit()
    assert obs.client.get(trial["left"]["src"] + "?view=original").status_code == 404
    assert app.test_client().get(trial["right"]["src"]).status_code == 302  # login required


def test_roi_crop_at_camera_resolution_original_on_demand(app, campaign, login):
    """The crop is cut, never resized (the spec's display.size is 96, the ROI 32x32)."""
    cid = campaign()
    obs = login("obs1")
    sid = obs.start(cid)
    with app.app_context():
        s1 = {im.id for im in get_db().query(Image) if im.scene == "s1"}
    while True:
        trial = obs.next(sid)["trials"][0]
        if sides(app, trial["id"])[0] in s1:
            break
        obs.answer(trial["id"])
    crop = PILImage.open(io.BytesIO(obs.client.get(trial["left"]["src"]).data))
    original = obs.client.get(trial["left"]["original"])
    assert crop.size == (32, 32)
    assert PILImage.open(io.BytesIO(original.data)).size == (64, 48)
    with app.app_context():
        im = get_db().get(Image, sides(app, trial["id"])[0])
        source = PILImage.open(Path(app.config["IMAGE_STORE"]) / im.filename)
    expected = np.asarray(source.convert("RGB").crop((8, 8, 40, 40)))
    assert np.array_equal(np.asarray(crop.convert("RGB")), expected)  # pixel for pixel


def test_session_cookie_expires(app, campaign, login, run_session):
    campaign()
    assert app.permanent_session_lifetime == timedelta(hours=8)
    obs = login("obs1")
    assert obs.client.get("/").status_code == 200
    app.permanent_session_lifetime = timedelta(seconds=1)
    time.sleep(2.1)
    assert obs.client.get("/").status_code == 302  # expired: back to the login form


def test_wrong_password_and_add_user_validation(app, campaign):
    import pytest

    from annotation_app.accounts import add_user
    from scaling.errors import InputError

    campaign()
    client = app.test_client()
    client.get("/auth/login")
    with app.app_context():
        for args, field in (
            (("x y", "longenough", "observer"), "username"),
            (("new", "short", "observer"), "password"),
            (("new", "longenough", "boss"), "role"),
            (("obs1", "longenough", "observer"), "username"),
        ):
            with pytest.raises(InputError) as err:
                add_user(get_db(), *args)
            assert err.value.field == field
