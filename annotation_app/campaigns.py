"""Creating a campaign: validate the spec and every image first, then store all at once.

Images are copied into a content-addressed store (``<sha256><suffix>``), so the app only
ever serves files it put there itself.
"""

from __future__ import annotations

import hashlib
import shutil
from functools import lru_cache
from pathlib import Path

from PIL import Image as PILImage
from sqlalchemy import select
from sqlalchemy.orm import Session

from annotation_app.models import Campaign, Image
from annotation_app.spec import CampaignSpec, parse_spec, resolve_images, spec_hash
from scaling.errors import InputError


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def load_campaign_spec(campaign: Campaign) -> CampaignSpec:
    """The frozen spec of a stored campaign (parsed once per spec text, then cached)."""
    return _parse_frozen(campaign.spec_yaml, campaign.name)


@lru_cache(maxsize=64)
def _parse_frozen(text: str, name: str) -> CampaignSpec:
    # A stored spec never changes (frozen to its hash): parsing YAML + pydantic on every
    # request was measurable under load. Callers must not mutate the returned spec.
    return parse_spec(text, source=f"campaign {name}")


def create_campaign(db: Session, spec_path: Path, store: Path) -> tuple[Campaign, bool]:
    """Load ``spec_path`` into the database; returns (campaign, created).

    Re-running with an identical spec is a no-op; a changed spec under a running
    campaign's name is refused, because its trials were collected under the old one.
    """
    text = spec_path.read_text(encoding="utf-8")
    spec = parse_spec(text, source=str(spec_path))
    digest = spec_hash(text)
    existing = db.scalar(select(Campaign).where(Campaign.name == spec.name))
    if existing is not None:
        if existing.spec_hash != digest:
            raise InputError(
                f"campaign {spec.name!r} is frozen to spec {existing.spec_hash[:12]}; "
                "this spec differs: give it a new name",
                source=str(spec_path),
                field="name",
            )
        return existing, False
    rows = []
    for scene, condition, file, roi in resolve_images(spec, spec_path.parent):
        try:
            with PILImage.open(file) as im:
                width, height = im.size
        except OSError as err:
            raise InputError(f"not a readable image: {file}", source=str(spec_path)) from err
        if roi is not None:
            x, y, w, h = roi
            if x < 0 or y < 0 or w <= 0 or h <= 0 or x + w > width or y + h > height:
                raise InputError(
                    f"roi {list(roi)} outside image {file.name} ({width}x{height})",
                    source=str(spec_path),
                )
        rows.append((scene, condition, file, roi, width, height))
    store.mkdir(parents=True, exist_ok=True)
    campaign = Campaign(name=spec.name, spec_yaml=text, spec_hash=digest)
    db.add(campaign)
    for scene, condition, file, roi, width, height in rows:
        sha = file_sha256(file)
        filename = sha + file.suffix.lower()
        if not (store / filename).exists():
            shutil.copyfile(file, store / filename)
        campaign.images.append(
            Image(
                scene=scene,
                condition=condition,
                sha256=sha,
                filename=filename,
                width=width,
                height=height,
                roi=list(roi) if roi else None,
            )
        )
    db.commit()
    return campaign, True
