"""``jod demo``: the whole pipeline on the example study, with a known truth to check it by.

Steps: build the example renditions (``study.example``), simulate the expert panel
(``study.panel``), scale per scene and cross-content with ``scaling.scale`` and an observer
bootstrap (``study.pipeline``), align onto one unified scale (``alignment``), export the
training table, draw the plots and write ``report.md``.

Output folder (default ``jod-demo/``)::

    example/                         images, ROI crops, manifest.csv (``jod example``)
    trials/scene_trials.csv          per-scene trials (scaling.formats trial layout)
    trials/cross_trials.csv          cross-content trials (scene_A/scene_B)
    scales/scene_scales.csv          per-scene scale table (+ .meta.json)
    scales/cross_scales.csv          cross-content scale table, condition = "<scene>/<cond>"
    unified.csv                      unified scale (alignment.formats) (+ .meta.json)
    training.csv                     scaling.formats.TRAINING_COLUMNS, paths relative to here
    recovery.csv                     truth recovery per attribute
    plots/                           rankings, alignment diagnostics, recovery scatter
    report.md                        what was run, the a_j/b_j table, truth recovery, plots
    demo.json                        the configuration (marks the folder as a demo output)

Folder policy: an empty or missing folder is used; a folder holding a previous demo
(``demo.json``) is reused, its outputs replaced; any other non-empty folder is refused
unless ``force`` (then files are written over, nothing else is deleted). Everything is
written in a temporary folder beside it first and moved in only when the run succeeded, so
a failed run leaves the folder as it was (``scaling.outputs.output_folder``).
"""

from __future__ import annotations

import json
import os
import platform
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from alignment.align import align, to_training
from alignment.formats import AlignmentWarning
from alignment.joint import align_joint
from alignment.options import METHODS
from alignment.plots import plot_alignment
from scaling.errors import InputError
from scaling.io import write_table
from scaling.outputs import check_outputs, output_folder
from scaling.plots import plot_rankings, plot_recovery
from study.example import DEFAULT_SCENES, SceneSpec, build_example, folder_scenes
from study.pipeline import PanelConfig, SimulatedStudy, recovery, simulate_study
from study.renditions import ladder

MARKER = "demo.json"
RANKED_SCENES = 3  # ranking plots for the first few scenes: enough to see, quick to draw


@dataclass(frozen=True)
class DemoConfig:
    """Everything ``jod demo`` needs; saved as ``demo.json`` next to the outputs.

    ``images``: a folder of photographs to use as scenes (default: scikit-image's samples).
    ``scenes``: how many scenes to take from ``images`` (the default set has 6).
    ``detail_levels``/``noise_levels``: the rendition ladder (``study.renditions.ladder``).
    ``method``: alignment method (``paper``, ``weighted``, ``eiv`` or ``joint``).
    ``align_bootstrap``: resamples for the unified scale's CIs (observer bootstrap for
    ``joint``, line-fit bootstrap otherwise).
    """

    images: str | None = None
    scenes: int = 6
    size: int = 192
    detail_levels: tuple[float, ...] = (1.0, 0.6, 0.4, 0.25)
    noise_levels: tuple[float, ...] = (0.0, 0.03, 0.07)
    panel: PanelConfig = field(default_factory=PanelConfig)
    method: str = "paper"
    align_bootstrap: int = 200

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, not {self.method!r}")
        if self.scenes < 2:
            raise ValueError(f"scenes must be at least 2 (alignment needs two), not {self.scenes}")
        if not 32 <= self.size <= 2048:
            raise ValueError(f"size must be between 32 and 2048 pixels, not {self.size}")
        if self.align_bootstrap < 0:
            raise ValueError(f"align_bootstrap must be >= 0, not {self.align_bootstrap}")
        if len(self.detail_levels) * len(self.noise_levels) < self.panel.budget:
            raise ValueError("the ladder has fewer renditions than the cross-content budget")

    def scene_specs(self) -> tuple[SceneSpec, ...]:
        """The scenes: the default set, or one per photograph of ``images``."""
        if self.images is None:
            if self.scenes > len(DEFAULT_SCENES):
                raise ValueError(
                    f"the default set has {len(DEFAULT_SCENES)} scenes, not {self.scenes}: "
                    "pass a folder of photographs (--images) for more"
                )
            return DEFAULT_SCENES[: self.scenes]
        specs = folder_scenes(Path(self.images), self.scenes)
        if len(specs) < 2:
            raise ValueError(f"{self.images} holds {len(specs)} image; alignment needs 2 scenes")
        return specs


def prepare_folder(out: Path, force: bool = False, images: Path | None = None) -> None:
    """Apply the folder policy (module docstring); fail before anything is written."""
    if out.exists() and not out.is_dir():
        raise InputError("exists and is not a folder", source=str(out))
    if out.is_dir() and any(out.iterdir()) and not (out / MARKER).exists() and not force:
        raise InputError(
            "is not empty and holds no previous demo (no demo.json): choose another "
            "folder or pass --force to write over its files",
            source=str(out),
        )
    check_outputs(inputs={"--images": images}, outputs={}, folders={"-o/--output": out})


def _align(study: SimulatedStudy, config: DemoConfig, progress: bool) -> pd.DataFrame:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AlignmentWarning)  # recorded in the metadata
        if config.method == "joint":
            return align_joint(
                study.scene_trials,
                study.cross_trials,
                bootstrap=config.align_bootstrap,
                seed=config.panel.seed,
                progress=progress,
            )
        return align(
            study.scene_scales,
            study.cross_scales,
            method=config.method,
            bootstrap=config.align_bootstrap,
            seed=config.panel.seed,
            progress=progress,
        )


def _pooled_spearman(study: SimulatedStudy) -> dict[str, float]:
    """Spearman of the raw per-scene scores pooled over scenes: what alignment improves on."""
    from scipy.stats import spearmanr

    merged = study.truth.merge(study.scene_scales, on=["scene", "attribute", "condition"])
    return {
        str(a): float(spearmanr(m["q_true"], m["jod"])[0]) for a, m in merged.groupby("attribute")
    }


def _recovery_plots(unified: pd.DataFrame, truth: pd.DataFrame, folder: Path) -> list[Path]:
    """Unified scores (and CIs) mapped onto the truth's units by the best affine fit.

    The same map as ``study.pipeline.recovery``, so the plot's RMSE is the report's.
    """
    merged = unified.merge(truth, on=["attribute", "scene", "condition"])
    paths = []
    for attr, m in merged.groupby("attribute"):
        design = np.c_[m["jod_unified"], np.ones(len(m))]
        slope, shift = np.linalg.lstsq(design, m["q_true"], rcond=None)[0]
        est = pd.DataFrame({c: slope * m[s] + shift for c, s in _MAPPED.items()})
        title = f"{attr}: unified scale, affine-mapped onto the true quality"
        path = folder / f"recovery_{attr}.png"
        paths.append(plot_recovery(m["q_true"].to_numpy(), est, path, title=title))
    return paths


_MAPPED = {"jod": "jod_unified", "ci_low": "ci_low", "ci_high": "ci_high"}


def run_demo(
    out: Path | str = "jod-demo",
    config: DemoConfig | None = None,
    *,
    force: bool = False,
    n_jobs: int | None = None,
    progress: bool = True,
) -> dict:
    """Run the pipeline into ``out``; return a summary (timings, recovery, paths)."""
    config = config or DemoConfig()
    out = Path(out)
    specs = config.scene_specs()  # bad --images fails here, before anything is written
    prepare_folder(out, force, None if config.images is None else Path(config.images))
    start = time.perf_counter()
    with output_folder(out) as work:
        steps = tqdm(total=6, desc="jod demo", unit="step", disable=not progress)
        timings: dict[str, float] = {}

        def done(name: str, t0: float) -> float:
            timings[name] = round(time.perf_counter() - t0, 2)
            steps.update(1)
            return time.perf_counter()

        t = time.perf_counter()
        ladder_steps = ladder(config.detail_levels, config.noise_levels, seed=config.panel.seed)
        manifest = build_example(
            work / "example", specs, ladder_steps, size=config.size, progress=progress
        )
        t = done("example", t)
        study = simulate_study(manifest, config.panel, n_jobs=n_jobs, progress=progress)
        write_table(study.scene_trials, work / "trials" / "scene_trials.csv")
        write_table(study.cross_trials, work / "trials" / "cross_trials.csv")
        write_table(study.scene_scales, work / "scales" / "scene_scales.csv")
        write_table(study.cross_scales, work / "scales" / "cross_scales.csv")
        t = done("simulate and scale", t)
        unified = _align(study, config, progress)
        write_table(unified, work / "unified.csv")
        paths = unified.merge(manifest[["scene", "condition", "image_path"]], how="left")
        training = to_training(unified, "example/" + paths["image_path"])
        write_table(training, work / "training.csv")
        t = done("align and export", t)
        rec = recovery(unified, study.truth).assign(
            spearman_unaligned=lambda r: r["attribute"].map(_pooled_spearman(study))
        )
        rec.to_csv(work / "recovery.csv", index=False)
        t = done("truth recovery", t)
        first = sorted(study.scene_scales["scene"].unique())[:RANKED_SCENES]
        shown = study.scene_scales[study.scene_scales["scene"].isin(first)]
        plots = plot_rankings(shown, work / "plots" / "rankings")
        plots += plot_alignment(unified, work / "plots" / "alignment")
        plots += _recovery_plots(unified, study.truth, work / "plots")
        done("plots", t)
        timings["total"] = round(time.perf_counter() - start, 1)
        summary = {
            "config": asdict(config),
            "seconds": timings,
            "recovery": rec.to_dict("records"),
            "n_images": len(manifest),
            "n_trials": {"per_scene": len(study.scene_trials), "cross": len(study.cross_trials)},
        }
        write_report(work, config, unified, study, rec, plots, summary)
        (work / MARKER).write_text(json.dumps(summary, indent=2, default=str) + "\n")
    steps.update(1)
    steps.close()
    return summary


def _maps_table(unified: pd.DataFrame, truth: pd.DataFrame) -> list[str]:
    """Markdown rows of a_j, b_j per attribute and scene, with the true relative slope."""
    spread = truth.groupby(["attribute", "scene"])["spread"].first()
    lines = [
        "| attribute | scene | a_j | a_j 95% CI | b_j | b_j 95% CI | cross images | "
        "a_j / a_ref | true s_ref / s_j |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for attr, info in unified.attrs["jodkit"]["attributes"].items():
        ref = info["reference"]
        a_ref = info["scenes"][ref]["a"]
        for scene, v in info["scenes"].items():

            def ci(key: str, v: dict = v) -> str:
                lo_hi = v.get(key)
                return f"[{lo_hi[0]:.2f}, {lo_hi[1]:.2f}]" if lo_hi else "-"

            true_ratio = spread[(attr, ref)] / spread[(attr, scene)]
            mark = " (reference)" if scene == ref else ""
            lines.append(
                f"| {attr} | {scene}{mark} | {v['a']:.3f} | {ci('a_ci')} | {v['b']:+.3f} | "
                f"{ci('b_ci')} | {v['n_cross']} | {v['a'] / a_ref:.3f} | {true_ratio:.3f} |"
            )
    return lines


def write_report(
    out: Path,
    config: DemoConfig,
    unified: pd.DataFrame,
    study: SimulatedStudy,
    rec: pd.DataFrame,
    plots: list[Path],
    summary: dict,
) -> Path:
    """``report.md``: what was simulated, the outputs, truth recovery, scene maps, plots."""
    panel = config.panel
    meta = unified.attrs["jodkit"]
    refs = ", ".join(
        f"{a}: {i['reference']} ({i['reference_reason']})" for a, i in meta["attributes"].items()
    )
    n_cond = len(config.detail_levels) * len(config.noise_levels)
    lines = [
        "# jod demo report",
        "",
        f"{summary['n_images']} images: {len(config.scene_specs())} scenes x {n_cond} renditions "
        f"({config.size} px), attributes {', '.join(sorted(study.truth['attribute'].unique()))}. "
        f"Per-scene panel: {panel.observers} simulated observers judge every pair of every "
        f"scene ({summary['n_trials']['per_scene']} trials); cross-content panel: "
        f"{panel.cross_observers} observers judge {panel.budget} images per scene across "
        f"scenes ({summary['n_trials']['cross']} trials). Scales: `scaling.scale` with a "
        f"{panel.bootstrap}-sample observer bootstrap; alignment: method `{config.method}`, "
        f"{config.align_bootstrap} bootstrap resamples; seed {panel.seed}.",
        "",
        f"Reference scenes: {refs}.",
        "",
        f"Run time: {summary['seconds']['total']} s ("
        + ", ".join(f"{k} {v} s" for k, v in summary["seconds"].items() if k != "total")
        + f") on {platform.machine()} with {os.cpu_count()} CPU cores.",
        "",
        "## Truth recovery",
        "",
        "The unified scale takes the reference scene's unit and offset, which no comparison "
        "can tie to the truth's, so the error is measured after the best affine map.",
        "",
        "| attribute | Spearman (unified) | RMSE after affine map (JOD) | "
        "Spearman (per-scene scores pooled, no alignment) |",
        "|---|---|---|---|",
        *(
            f"| {r.attribute} | {r.spearman:.4f} | {r.rmse:.3f} | {r.spearman_unaligned:.4f} |"
            for r in rec.itertuples()
        ),
        "",
        "## Scene maps y = a_j x + b_j",
        "",
        "`a_j / a_ref` should match the true ratio of the hidden scene spreads "
        "`s_ref / s_j` (simulated observers see scene j on the scale s_j q + c_j).",
        "",
        *_maps_table(unified, study.truth),
        "",
        "## Outputs",
        "",
        "| file | content |",
        "|---|---|",
        "| [example/manifest.csv](example/manifest.csv) | one row per rendition, with its "
        "parameters and ROI |",
        "| [trials/scene_trials.csv](trials/scene_trials.csv), "
        "[trials/cross_trials.csv](trials/cross_trials.csv) | simulated trials |",
        "| [scales/scene_scales.csv](scales/scene_scales.csv), "
        "[scales/cross_scales.csv](scales/cross_scales.csv) | JOD scale tables |",
        "| [unified.csv](unified.csv) | unified scale (metadata in unified.csv.meta.json) |",
        "| [training.csv](training.csv) | image_path, scene, attribute, jod, jod_std |",
        "| [recovery.csv](recovery.csv) | the truth-recovery table above |",
        "",
        "## Plots",
        "",
        *(f"![{p.stem}]({p.relative_to(out).as_posix()})" for p in plots),
        "",
    ]
    path = out / "report.md"
    path.write_text("\n".join(lines))
    return path
