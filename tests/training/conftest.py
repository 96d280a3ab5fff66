"""A synthetic noise study shared by the learning tests: renditions of scikit-image photos.

Each scene is a square crop of a sample photo; its renditions add Gaussian noise of known
strength (``study.renditions``) and its JOD falls with the noise. All crops of the
``TEST_PHOTOS`` are test scenes, so the test content is unseen in training.
"""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

NOISE_SIGMAS = (0.0, 0.03, 0.06, 0.1, 0.15)
TEST_PHOTOS = ("chelsea", "camera")


def write_noise_study(root: Path, size: int) -> Path:
    """Write the renditions (``size`` px squares) and ``table.csv`` with a ``split`` column."""
    pytest.importorskip("skimage.data")
    pytest.importorskip("cv2")  # study.renditions
    from PIL import Image

    from study.example import SAMPLE_PHOTOS, photo_crops
    from study.renditions import RenditionParams, render

    root.mkdir(parents=True, exist_ok=True)
    rows = []
    for name, c, pixels in photo_crops():
        p = SAMPLE_PHOTOS.index(name)
        crop = Image.fromarray(pixels)
        base = np.asarray(crop.resize((size, size), Image.Resampling.BOX))
        scene = f"{name}{c}"
        for level, sigma in enumerate(NOISE_SIGMAS):
            params = RenditionParams(noise_sigma=sigma, seed=1000 * p + 10 * c + level)
            file = f"{scene}_{level}.png"
            Image.fromarray(render(base, params)).save(root / file)
            split = "test" if name in TEST_PHOTOS else "train"
            rows.append((file, scene, "noise", round(-20 * sigma, 3), 0.3, split))
    columns = ["image_path", "scene", "attribute", "jod", "jod_std", "split"]
    pd.DataFrame(rows, columns=columns).to_csv(root / "table.csv", index=False)
    return root / "table.csv"


def write_flat_workspace(
    root: Path, attributes: tuple[str, ...], shape: tuple[int, int], seed: int
) -> Path:
    """A tiny model (``root/tiny``) and ``root/table.csv``: 6 scenes of flat colour with 4
    noise levels each (noise falls with JOD), every image rated for each attribute."""
    pytest.importorskip("torch").set_num_threads(1)  # tiny tensors: threads only contend
    from PIL import Image

    from training.tiny import save_tiny_model

    save_tiny_model(root / "tiny")
    rng = np.random.default_rng(seed)
    (root / "img").mkdir()
    rows = []
    for scene in range(6):
        base = rng.uniform(40, 200, 3)
        for level in range(4):
            pixels = base + rng.normal(0, 5 + 25 * level, (*shape, 3))
            name = f"img/s{scene}_{level}.png"
            Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(root / name)
            rows.extend((name, f"s{scene}", a, -float(level), 0.3) for a in attributes)
    table = pd.DataFrame(rows, columns=["image_path", "scene", "attribute", "jod", "jod_std"])
    table.to_csv(root / "table.csv", index=False)
    return root


@pytest.fixture(scope="session")
def flat_workspace():
    """:func:`write_flat_workspace`, for test modules' own workspaces."""
    return write_flat_workspace


@pytest.fixture(scope="session")
def noise_study(tmp_path_factory) -> Path:
    """The study at 112 px (8 x 8 patches of 14 px: enough pixels per patch to see noise)."""
    return write_noise_study(tmp_path_factory.mktemp("noise_study"), size=112)


@pytest.fixture(scope="session")
def shuffled_noise_study(noise_study) -> Path:
    """The same table with the training rows' JOD permuted: the chance control."""
    table = noise_study
    frame = pd.read_csv(table)
    train = frame["split"] == "train"
    permuted = np.random.default_rng(0).permutation(frame.loc[train, "jod"].to_numpy())
    frame.loc[train, "jod"] = permuted
    path = table.with_name("shuffled.csv")
    frame.to_csv(path, index=False)
    return path


@pytest.fixture(autouse=True)
def fresh_accelerate_state():
    """accelerate keeps one process-wide state (its mixed precision among it); each test's
    runs start from none, as a fresh `jod train` process does."""
    yield
    state = pytest.importorskip("accelerate.state")
    state.AcceleratorState._reset_state(reset_partial_state=True)
    state.GradientState._reset_state()


@pytest.fixture
def prediction_atol() -> float:
    """How closely predictions reloaded from disk must agree: exactly on the CPU; on a GPU,
    TF32 and cuDNN's kernel choices move the tiny model's JOD by about 2e-4."""
    torch = pytest.importorskip("torch")
    return 1e-3 if torch.cuda.is_available() else 1e-5


@pytest.fixture(scope="session")
def pair_study(noise_study) -> dict[str, Path]:
    """The noise study as the comparator reads it: an image index, the true scale (its
    Thurstone probabilities are the targets), simulated trials of 5 observers per scene and
    the study's scene split."""
    from scaling.simulate import simulate_trials

    root = noise_study.parent
    table = pd.read_csv(noise_study)
    table["condition"] = table["image_path"].str.removesuffix(".png")
    paths = {name: root / f"pairs_{name}.csv" for name in ("index", "scale", "trials", "split")}
    table[["scene", "condition", "image_path"]].to_csv(paths["index"], index=False)
    truth = table[["scene", "attribute", "condition", "jod"]]
    truth.to_csv(paths["scale"], index=False)
    simulate_trials(truth, n_observers=5, seed=0).to_csv(paths["trials"], index=False)
    table[["scene", "split"]].drop_duplicates().to_csv(paths["split"], index=False)
    return paths
