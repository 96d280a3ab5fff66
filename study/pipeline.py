"""The simulated study, scaled: truth -> per-scene trials -> scales -> cross task -> scales.

One place for the steps that ``study.compare`` (method comparison over seeds) and
``study.demo`` (``jod demo``) share. Scaling is ``scaling.scale`` throughout: per-scene
trials grouped by ``scene, attribute``; cross-content trials (``scene_A/scene_B``, their
images keyed ``"<scene>/<condition>"`` by ``scaling``) grouped by ``attribute``. A
bootstrap (observers resampled) gives the ``jod_std`` that the weighted and
errors-in-variables fits and the unified scale's CIs need.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

import scaling
from alignment.selection import select_cross_images
from study.panel import cross_trials, make_truth, per_scene_trials


@dataclass(frozen=True)
class PanelConfig:
    """Size of the simulated panel and of the bootstrap (defaults: a modest demo).

    ``observers``/``cross_observers``: per-scene and cross-content panels (METHODS.md
    advises 15 or more). ``budget``: images per scene in the cross-content task.
    ``bootstrap``: observer-bootstrap samples per scaled group (0: no ``jod_std``).
    """

    observers: int = 15
    cross_observers: int = 15
    budget: int = 5
    bootstrap: int = 100
    seed: int = 0

    def __post_init__(self) -> None:
        for name, low in (("observers", 2), ("cross_observers", 2), ("budget", 2)):
            if getattr(self, name) < low:
                raise ValueError(f"{name} must be at least {low}, not {getattr(self, name)}")
        if self.bootstrap < 0:
            raise ValueError(f"bootstrap must be >= 0, not {self.bootstrap}")


@dataclass
class SimulatedStudy:
    """Everything a simulated study produces, truth included."""

    truth: pd.DataFrame  # scene, attribute, condition, q_true, x_true, spread, offset
    scene_trials: pd.DataFrame
    scene_scales: pd.DataFrame  # scaling.formats scale table, by scene and attribute
    chosen: pd.DataFrame  # images picked for the cross-content task
    cross_trials: pd.DataFrame  # scene_A/scene_B trials
    cross_scales: pd.DataFrame  # scale table by attribute, condition = "<scene>/<cond>"


def simulate_study(
    manifest: pd.DataFrame,
    config: PanelConfig,
    attributes: tuple[str, ...] | None = None,
    *,
    n_jobs: int | None = None,
    progress: bool = False,
) -> SimulatedStudy:
    """Simulate both tasks on the renditions of ``manifest`` and scale them.

    ``attributes``: keep only these (default: all of ``study.panel.ATTRIBUTES``).
    """
    truth = make_truth(manifest, seed=config.seed)
    if attributes is not None:
        truth = truth[truth["attribute"].isin(attributes)].reset_index(drop=True)
    st = per_scene_trials(truth, n_observers=config.observers, seed=config.seed)
    options = {"bootstrap": config.bootstrap, "seed": config.seed, "n_jobs": n_jobs}
    scenes = scaling.scale(st, by=["scene", "attribute"], progress=progress, **options)
    chosen = pd.concat(
        [
            select_cross_images(part, config.budget).assign(attribute=attr)
            for attr, part in scenes.groupby("attribute", sort=True)
        ],
        ignore_index=True,
    )
    ct = cross_trials(truth, chosen, n_observers=config.cross_observers, seed=config.seed)
    cross = scaling.scale(ct, by=["attribute"], progress=progress, **options)
    return SimulatedStudy(truth, st, scenes, chosen, ct, cross)


def recovery(unified: pd.DataFrame, truth: pd.DataFrame) -> pd.DataFrame:
    """Per attribute: RMSE to the truth after the best affine map, and Spearman's rho.

    The unified scale takes the reference scene's unit and offset, which comparison data
    cannot tie to the truth's, so only agreement up to an affine map is meaningful.
    """
    keys = ["scene", "condition"]
    if "attribute" in unified.columns:
        keys = ["attribute", *keys]
    else:
        truth = truth.drop(columns="attribute")
    merged = truth.merge(unified, on=keys)
    groups = merged.groupby("attribute") if "attribute" in keys else [("all", merged)]
    rows = []
    for attr, m in groups:
        design = np.c_[m["jod_unified"], np.ones(len(m))]
        coef = np.linalg.lstsq(design, m["q_true"], rcond=None)[0]
        rmse = float(np.sqrt(np.mean((design @ coef - m["q_true"]) ** 2)))
        rho = float(spearmanr(m["q_true"], m["jod_unified"])[0])
        rows.append({"attribute": attr, "rmse": rmse, "spearman": rho, "n_images": len(m)})
    return pd.DataFrame(rows)
