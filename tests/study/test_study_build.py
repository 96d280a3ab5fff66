"""Example study: face ROIs, scene building, manifest, and the simulated panel."""

import logging

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from skimage import data

from scaling.formats import TRIAL_REQUIRED
from study.example import SceneSpec, build_example, folder_scenes
from study.faces import find_face
from study.panel import cross_trials, make_truth, per_scene_trials, true_quality
from study.renditions import RenditionParams


def test_face_found_on_the_astronaut():
    roi = find_face(data.astronaut())
    assert roi.method in ("haar", "lbp")
    # the astronaut's face lies around x 180-280, y 60-170 of the 512 px image
    cx, cy = roi.x + roi.w / 2, roi.y + roi.h / 2
    assert 180 < cx < 300 and 50 < cy < 180


def test_no_face_falls_back_to_centre_with_a_warning(caplog):
    with caplog.at_level(logging.WARNING, logger="study.faces"):
        roi = find_face(np.full((100, 200, 3), 90, np.uint8))
    assert roi == type(roi)(75, 25, 50, 50, "centre")
    assert "no face" in caplog.text


@pytest.fixture(scope="module")
def small_study(tmp_path_factory):
    out = tmp_path_factory.mktemp("example")
    steps = [
        RenditionParams(),
        RenditionParams(scale=0.5, sharpen=0.3),
        RenditionParams(noise_sigma=0.05),
    ]
    scenes = (SceneSpec("astronaut"), SceneSpec("coffee", 0.8, 0.7, 0.1))
    return out, build_example(out, scenes, steps, size=96, progress=False)


def test_example_writes_images_crops_and_a_replayable_manifest(small_study):
    out, manifest = small_study
    assert len(manifest) == 6 and manifest["scene"].nunique() == 2
    back = pd.read_csv(out / "manifest.csv")
    for rec in back.to_dict("records"):
        img = np.asarray(Image.open(out / rec["image_path"]))
        crop = np.asarray(Image.open(out / rec["crop_path"]))
        assert max(img.shape[:2]) == 96
        assert crop.shape[:2] == (rec["roi_h"], rec["roi_w"])
    assert RenditionParams.from_dict(back.iloc[1].to_dict()) == RenditionParams(
        scale=0.5, sharpen=0.3
    )
    # the darker, warmer coffee scene differs from its source look
    a = np.asarray(Image.open(out / back.iloc[3]["image_path"])).astype(float)
    assert a[..., 0].mean() > a[..., 2].mean()


def test_folder_of_images(tmp_path):
    for i in range(3):
        Image.fromarray(np.full((40, 60, 3), 60 * i, np.uint8)).save(tmp_path / f"p{i}.png")
    specs = folder_scenes(tmp_path, n_scenes=2)
    (tmp_path / "empty_dir_missing_images").mkdir()
    assert [s.source.endswith(f"p{i}.png") for i, s in enumerate(specs)] == [True, True]
    with pytest.raises(FileNotFoundError, match="no images"):
        folder_scenes(tmp_path / "empty_dir_missing_images", 1)


def test_true_quality_orders_renditions_by_attribute():
    ref = true_quality(RenditionParams())
    assert ref == {"detail": 0.0, "noise": 0.0}
    blur = true_quality(RenditionParams(scale=0.25))
    noisy = true_quality(RenditionParams(noise_sigma=0.07))
    assert blur["detail"] < -5 and blur["noise"] == 0.0
    assert noisy["noise"] < -4 and noisy["detail"] == 0.0


def test_panel_answers_follow_the_truth(small_study):
    _, manifest = small_study
    truth = make_truth(manifest, seed=1)
    trials = per_scene_trials(truth, n_observers=20, careless=0.0, seed=2)
    assert set(TRIAL_REQUIRED) <= set(trials.columns)
    x = truth.set_index(["scene", "attribute", "condition"])["x_true"]
    xa = x.loc[
        list(zip(trials.scene, trials.attribute, trials.condition_A, strict=True))
    ].to_numpy()
    xb = x.loc[
        list(zip(trials.scene, trials.attribute, trials.condition_B, strict=True))
    ].to_numpy()
    far = np.abs(xa - xb) > 3
    agree = (trials["is_A_selected"].to_numpy() == (xa > xb))[far].mean()
    assert agree > 0.9


def test_cross_trials_pair_different_scenes(small_study):
    _, manifest = small_study
    truth = make_truth(manifest, seed=1)
    cross = cross_trials(truth, truth[["scene", "attribute", "condition"]], n_observers=5, seed=3)
    assert "scene" not in cross.columns
    assert (cross["scene_A"] != cross["scene_B"]).all()
    assert set(cross["condition_A"]) <= set(manifest["condition"])
    # 3 images per scene, 2 scenes: 9 cross pairs x 5 observers per attribute
    assert len(cross) == 9 * 5 * 2
