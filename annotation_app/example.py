"""The bundled example campaign behind a bare ``jod serve``: three scikit-image scenes,
each a rendition ladder from ``study.renditions``, and demo accounts."""

from __future__ import annotations

import secrets
from pathlib import Path

import numpy as np
from PIL import Image as PILImage
from sqlalchemy import select
from sqlalchemy.orm import Session

from annotation_app import private_file
from annotation_app.accounts import add_user, assign
from annotation_app.campaigns import create_campaign
from annotation_app.models import Campaign

SCENES = {"astronaut": [150, 20, 200, 200], "coffee": None, "chelsea": None}
"""scene -> region of interest (x, y, w, h): the astronaut's face is shown as a crop."""
DEMO_USERS = (
    ("admin", "admin"),
    ("experimenter", "experimenter"),
    *((f"observer{i}", "observer") for i in range(1, 4)),
)

SPEC = """\
name: example-portraits
seed: 7
image_root: images
scenes:
{scenes}
attributes:
  - name: detail
    question: Which image shows more fine detail?
    instructions: |
      Look at textures: hair, skin, fabric, fur. Ignore colour and framing.
      Zoom in (+) or use 1:1 pixels (P) when the difference is small.
  - name: noise
    question: Which image is less noisy?
    instructions: Judge grain and speckle in flat areas. Less noise is better.
sessions: [per_scene, cross_content]
comparisons: {{per_pair: 3}}
tie_allowed: true
golden:
  rate: 0.05
  pairs:
{golden}
repeat_rate: 0.05
training_trials: 3
session: {{length: 40, break_after_minutes: 30, break_minutes: 5}}
display: {{size: 512}}
cross_content: {{images_per_scene: 4}}
"""


def _scene_images(name: str) -> np.ndarray:
    from skimage import data

    image = getattr(data, name)()
    return image if image.ndim == 3 else np.stack([image] * 3, axis=-1)


def write_example(folder: Path) -> Path:
    """Render the ladders and the spec into ``folder``; return the spec's path."""
    from study.renditions import ladder, render

    steps = ladder(detail_levels=(1.0, 0.6, 0.35), noise_levels=(0.0, 0.04), seed=7)
    for scene in SCENES:
        out = folder / "images" / scene
        out.mkdir(parents=True, exist_ok=True)
        source = _scene_images(scene)
        for i, params in enumerate(steps):
            PILImage.fromarray(render(source, params)).save(out / f"r{i}.png")
    scenes = "\n".join(
        f"  - name: {s}\n    images: {s}" + (f"\n    roi: {roi}" if roi else "")
        for s, roi in SCENES.items()
    )
    last = f"r{len(steps) - 1}"
    golden = "\n".join(f"    - {{scene: {s}, better: r0, worse: {last}}}" for s in SCENES)
    spec = folder / "example.yaml"
    spec.write_text(SPEC.format(scenes=scenes, golden=golden))
    return spec


def ensure_example(db: Session, home: Path, store: Path) -> list[tuple[str, str, str]]:
    """Create the example campaign and demo accounts once; return (user, role, password)."""
    accounts = home / "demo-accounts.txt"
    if db.scalar(select(Campaign).limit(1)) is None:
        campaign = create_campaign(db, write_example(home / "example"), store).campaign
        if not accounts.exists():
            lines = []
            for username, role in DEMO_USERS:
                password = secrets.token_urlsafe(9)
                add_user(db, username, password, role)
                assign(db, username, campaign.name)
                lines.append(f"{username}\t{role}\t{password}")
            private_file(accounts, "\n".join(lines) + "\n")
    if not accounts.exists():
        return []
    return [tuple(line.split("\t")) for line in accounts.read_text().splitlines()]
