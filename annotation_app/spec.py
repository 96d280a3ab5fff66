"""Campaign specs: the YAML an experimenter writes, validated before anything is stored.

Errors name the path of the bad key (``scenes[1].images``) so the fix is obvious; a spec
that fails validation leaves the database untouched.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from scaling.errors import InputError, from_validation, from_yaml
from scaling.formats import scene_name_problem

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp")


class _Strict(BaseModel):
    """Unknown keys are errors: a typo must not be silently ignored."""

    model_config = ConfigDict(extra="forbid")


class ImageEntry(_Strict):
    path: str
    condition: str | None = None
    roi: tuple[int, int, int, int] | None = None


class Scene(_Strict):
    name: str = Field(min_length=1, max_length=120)
    images: str | list[ImageEntry | str]
    roi: tuple[int, int, int, int] | None = None

    @field_validator("name")
    @classmethod
    def _keyable(cls, name: str) -> str:
        """Exports key images ``"<scene>/<condition>"`` (``scaling.formats``)."""
        problem = scene_name_problem(name)
        if problem:
            raise ValueError(problem)
        return name


class Attribute(_Strict):
    name: str = Field(min_length=1, max_length=80, pattern=r"^[A-Za-z0-9_\-]+$")
    question: str = Field(min_length=1)
    instructions: str = ""


class Comparisons(_Strict):
    """Coverage target: comparisons wanted per pair, or per image (spread over its pairs)."""

    per_pair: float | None = Field(default=None, gt=0)
    per_image: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _one_of(self) -> Comparisons:
        if (self.per_pair is None) == (self.per_image is None):
            raise ValueError("give exactly one of per_pair or per_image")
        return self


class GoldenPair(_Strict):
    scene: str
    better: str
    worse: str
    attribute: str | None = None


class Golden(_Strict):
    rate: float = Field(default=0.0, ge=0, le=0.5)
    pairs: list[GoldenPair] = []


class SessionPolicy(_Strict):
    length: int = Field(default=60, ge=1, le=5000)
    break_after_minutes: float = Field(default=30.0, gt=0)
    break_minutes: float = Field(default=5.0, ge=0)


class Display(_Strict):
    """The panel the campaign is designed for. Images are always sent at the camera's
    resolution; a displayed region larger than ``size`` pixels draws a warning at creation
    (narrower panels show it downscaled by the browser, with an indicator)."""

    size: int = Field(default=768, ge=64, le=8192)


class CrossContent(_Strict):
    images_per_scene: int = Field(default=5, ge=2)


class ActiveSampling(_Strict):
    """The settings of ``sampling: active``: the stopping rule and when to replan."""

    target_width: float = Field(default=1.0, gt=0)
    """A group is done once the median 95% interval width of its scores is at most this
    (JOD); the dashboard predicts the judgments still needed to get there."""
    min_gain: float | None = Field(default=None, gt=0)
    """Also done once no pair is expected to tell more than this (nats)."""
    replan_after: float = Field(default=0.5, gt=0, le=1)
    """A group's next batch is planned once this share of its current batch has been
    handed out, or as many new answers have arrived."""


class CampaignSpec(_Strict):
    name: str = Field(min_length=1, max_length=120)
    seed: int = 0
    image_root: str = "."
    scenes: list[Scene] = Field(min_length=1)
    attributes: list[Attribute] = Field(min_length=1)
    sessions: list[Literal["per_scene", "cross_content"]] = ["per_scene"]
    comparisons: Comparisons = Comparisons(per_pair=3)
    tie_allowed: bool = False
    golden: Golden = Golden()
    repeat_rate: float = Field(default=0.0, ge=0, le=0.5)
    training_trials: int = Field(default=0, ge=0, le=100)
    max_per_observer: int = Field(default=2, ge=1)
    sampling: Literal["balanced", "active"] = "balanced"
    """How normal trials are chosen, in per-scene and cross-content sessions alike: the
    balanced design, or batches of the most informative pairs (``annotation_app.active``)."""
    active: ActiveSampling = ActiveSampling()
    prefer_close: float | None = Field(default=None, gt=0)
    """Once live scores exist, compare close conditions more often: a pair whose current
    JOD difference is ``prefer_close`` counts as twice as covered (None: off)."""
    session: SessionPolicy = SessionPolicy()
    display: Display = Display()
    cross_content: CrossContent = CrossContent()

    @model_validator(mode="after")
    def _references(self) -> CampaignSpec:
        scenes = [s.name for s in self.scenes]
        if len(set(scenes)) != len(scenes):
            raise ValueError(f"scene names must be unique: {scenes}")
        attrs = [a.name for a in self.attributes]
        if len(set(attrs)) != len(attrs):
            raise ValueError(f"attribute names must be unique: {attrs}")
        for i, pair in enumerate(self.golden.pairs):
            if pair.scene not in scenes:
                raise ValueError(f"golden.pairs[{i}].scene: unknown scene {pair.scene!r}")
            if pair.attribute is not None and pair.attribute not in attrs:
                raise ValueError(f"golden.pairs[{i}].attribute: unknown {pair.attribute!r}")
        if self.golden.rate > 0 and not self.golden.pairs:
            raise ValueError("golden.rate > 0 needs golden.pairs")
        if "cross_content" in self.sessions and len(self.scenes) < 2:
            raise ValueError("cross_content sessions need at least two scenes")
        return self

    def attribute(self, name: str) -> Attribute:
        """The attribute called ``name`` (KeyError when the spec has none)."""
        for attribute in self.attributes:
            if attribute.name == name:
                return attribute
        raise KeyError(name)


def parse_spec(text: str, source: str = "spec") -> CampaignSpec:
    """Parse and validate spec text; raise InputError naming the bad key."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise from_yaml(err, source) from err
    if not isinstance(raw, dict):
        raise InputError("the spec must be a YAML mapping", source=source)
    try:
        return CampaignSpec.model_validate(raw)
    except ValidationError as err:
        raise from_validation(err, source) from err


def spec_hash(text: str) -> str:
    """SHA-256 of the spec text: a running campaign is frozen to it."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _inside(root: Path, path: Path, where: str) -> Path:
    """``path`` resolved (symbolic links followed), refused unless it lies under ``root``."""
    resolved = path.resolve()
    if not resolved.is_relative_to(root):
        raise InputError(f"{path} lies outside image_root {root}", field=where)
    return resolved


def resolve_images(spec: CampaignSpec, base: Path) -> list[tuple[str, str, Path, tuple | None]]:
    """(scene, condition, file, roi) for every image, files checked to exist and to lie
    under ``image_root`` (no ``..``, absolute path or link leads out of it)."""
    root = (base / spec.image_root).resolve()
    out = []
    for si, scene in enumerate(spec.scenes):
        where = f"scenes[{si}].images"
        if isinstance(scene.images, str):
            folder = _inside(root, root / scene.images, where)
            if not folder.is_dir():
                raise InputError(f"folder not found: {folder}", field=where)
            entries = [
                ImageEntry(path=str(p))
                for p in sorted(folder.iterdir())
                if p.suffix.lower() in IMAGE_SUFFIXES
            ]
        else:
            entries = [ImageEntry(path=e) if isinstance(e, str) else e for e in scene.images]
        if len(entries) < 2:
            raise InputError(f"scene {scene.name!r} needs at least two images", field=where)
        seen: set[str] = set()
        for entry in entries:
            file = _inside(root, root / entry.path, where)
            if not file.is_file():
                raise InputError(f"image not found: {file}", field=where)
            condition = entry.condition or Path(entry.path).stem
            if condition in seen:
                raise InputError(f"duplicate condition {condition!r}", field=where)
            seen.add(condition)
            out.append((scene.name, condition, file, entry.roi or scene.roi))
    for i, pair in enumerate(spec.golden.pairs):
        known = {c for s, c, _, _ in out if s == pair.scene}
        for key in ("better", "worse"):
            if getattr(pair, key) not in known:
                raise InputError(
                    f"unknown condition {getattr(pair, key)!r} in scene {pair.scene!r}",
                    field=f"golden.pairs[{i}].{key}",
                )
    return out
