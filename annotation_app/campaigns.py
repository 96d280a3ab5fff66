"""Campaigns: create one from a spec (every image decoded and checked first, then all
stored at once), and run it (pause, close, archive, delete while it has no answers).

Images are copied into a content-addressed store (``<sha256><suffix>``), so the app only
ever serves files it put there itself. A format browsers cannot show (TIFF, BMP, GIF, or
more than 8 bits per channel outside PNG) is converted to PNG without loss, and the
conversion is recorded on the image.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image as PILImage
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from annotation_app.db import begin_write
from annotation_app.models import (
    ActiveGroup,
    ActivePair,
    Assignment,
    Campaign,
    Image,
    ObserverSession,
    PairCount,
    Trial,
)
from annotation_app.spec import CampaignSpec, parse_spec, resolve_images, spec_hash
from scaling.errors import InputError
from scaling.io import read_text

AS_IS_FORMATS = ("PNG", "JPEG", "WEBP")
"""Formats every browser decodes exactly: stored byte for byte."""
LARGE_PIXELS = 24_000_000
"""Above this, decoding in the browser takes seconds: creation warns."""


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


# ---- images -----------------------------------------------------------------------------


@dataclass
class Decoded:
    """One image of the spec, decoded in full and ready to store."""

    scene: str
    condition: str
    source: Path
    source_sha256: str
    width: int
    height: int
    roi: tuple[int, int, int, int] | None
    data: bytes
    """The bytes to store: the source's, or the lossless PNG made from it."""
    suffix: str
    conversion: str | None


def _bits_per_channel(im: PILImage.Image) -> int:
    """Bits per channel as stored in the file (Pillow reads 16-bit RGB TIFF as 8-bit)."""
    if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        return 32 if im.mode in ("I", "F") else 16
    bits = getattr(im, "tag_v2", {}).get(258) if im.format == "TIFF" else None
    return int(max(bits)) if bits else 8


def _to_png(file: Path, described: str) -> tuple[bytes, str]:
    """Lossless PNG bytes of an image browsers cannot show, and the record of it."""
    import cv2

    pixels = cv2.imread(str(file), cv2.IMREAD_UNCHANGED)
    if pixels is None or pixels.dtype not in (np.uint8, np.uint16):
        kind = "unreadable" if pixels is None else f"{pixels.dtype} samples"
        raise InputError(
            f"{file}: {described} cannot be stored as PNG without loss ({kind}); "
            "convert it to 8- or 16-bit PNG first"
        )
    ok, encoded = cv2.imencode(".png", pixels)
    back = cv2.imdecode(encoded, cv2.IMREAD_UNCHANGED) if ok else None
    if back is None or not np.array_equal(back, pixels):  # lossless, checked
        raise InputError(f"{file}: PNG conversion was not lossless")
    bits = 16 if pixels.dtype == np.uint16 else 8
    channels = 1 if pixels.ndim == 2 else pixels.shape[2]
    return encoded.tobytes(), f"{described} -> PNG {bits}-bit, {channels} channel(s), lossless"


def decode(
    scene: str, condition: str, file: Path, roi: tuple[int, int, int, int] | None
) -> Decoded:
    """Decode ``file`` completely (a truncated or corrupt file fails here, not in a
    browser) and convert it when browsers cannot show it."""
    try:
        with PILImage.open(file) as im:
            im.load()
            width, height = im.size
            fmt = im.format or file.suffix.lstrip(".").upper()
            bits = _bits_per_channel(im)
            described = f"{fmt} {im.mode} {bits}-bit"
    except (OSError, SyntaxError, ValueError, PILImage.DecompressionBombError) as err:
        raise InputError(f"is not a readable image ({err})", source=str(file)) from err
    if roi is not None:
        x, y, w, h = roi
        if x < 0 or y < 0 or w <= 0 or h <= 0 or x + w > width or y + h > height:
            raise InputError(f"roi {list(roi)} outside image {file} ({width}x{height})")
    raw = file.read_bytes()
    if fmt in AS_IS_FORMATS:
        data, suffix, conversion = raw, file.suffix.lower(), None
    else:
        data, conversion = _to_png(file, described)
        suffix = ".png"
    return Decoded(
        scene,
        condition,
        file,
        hashlib.sha256(raw).hexdigest(),
        width,
        height,
        roi,
        data,
        suffix,
        conversion,
    )


def image_warnings(images: list[Decoded], spec: CampaignSpec) -> list[str]:
    """What is allowed but probably a mistake: mixed resolutions within a scene, conditions
    with byte-identical files, images too large to show or decode comfortably."""
    warnings = []
    by_scene: dict[str, list[Decoded]] = defaultdict(list)
    for im in images:
        by_scene[im.scene].append(im)
    for scene, group in by_scene.items():
        sizes: dict[tuple[int, int], list[str]] = defaultdict(list)
        for im in group:
            sizes[im.width, im.height].append(im.condition)
        if len(sizes) > 1:
            listed = "; ".join(f"{w}x{h}: {', '.join(c)}" for (w, h), c in sorted(sizes.items()))
            warnings.append(
                f"scene {scene!r}: images at different resolutions ({listed}); "
                "their pairs cannot be compared pixel for pixel"
            )
    same: dict[str, list[Decoded]] = defaultdict(list)
    for im in images:
        same[im.source_sha256].append(im)
    for group in same.values():
        if len(group) > 1:
            names = ", ".join(f"{im.scene}/{im.condition}" for im in group)
            warnings.append(f"byte-identical images: {names}")
    size = spec.display.size
    for im in images:
        w, h = (im.roi[2], im.roi[3]) if im.roi else (im.width, im.height)
        where = f"{im.scene}/{im.condition} ({im.source.name})"
        if im.width * im.height > LARGE_PIXELS:
            warnings.append(
                f"{where}: {im.width}x{im.height} is {im.width * im.height / 1e6:.0f} "
                "megapixels: slow to decode in the browser, consider a region of interest"
            )
        elif max(w, h) > size:
            warnings.append(
                f"{where}: shows {w}x{h} pixels, more than display.size {size}: "
                "panels narrower than that show it downscaled"
            )
    return warnings


# ---- creating ---------------------------------------------------------------------------


@dataclass
class Created:
    """The outcome of ``create_campaign``."""

    campaign: Campaign
    created: bool
    warnings: list[str] = field(default_factory=list)


def create_campaign(db: Session, spec_path: Path, store: Path) -> Created:
    """Load the spec file ``spec_path`` (images relative to its folder) into the database."""
    text = read_text(spec_path)
    return create_from_text(db, text, spec_path.parent, store, source=str(spec_path))


def create_from_text(
    db: Session, text: str, base: Path, store: Path, source: str = "spec"
) -> Created:
    """Validate the spec and decode every image, then store the campaign (nothing is
    stored on error).

    Re-running with an identical spec is a no-op if every image is unchanged on disk; a
    changed image, or a changed spec under a running campaign's name, is refused: its
    trials were collected under the old one.
    """
    spec = parse_spec(text, source=source)
    digest = spec_hash(text)
    existing = db.scalar(select(Campaign).where(Campaign.name == spec.name))
    if existing is not None and existing.spec_hash != digest:
        raise InputError(
            f"campaign {spec.name!r} is frozen to spec {existing.spec_hash[:12]}; "
            "this spec differs: give it a new name",
            source=source,
            field="name",
        )
    try:
        located = resolve_images(spec, base)
        if existing is not None:
            _check_unchanged(existing, located)
            return Created(existing, False)
        images = [decode(*entry) for entry in located]
    except InputError as err:
        err.source = err.source or source
        raise
    begin_write(db)
    campaign = Campaign(name=spec.name, spec_yaml=text, spec_hash=digest, status="active")
    db.add(campaign)
    store.mkdir(parents=True, exist_ok=True, mode=0o700)
    for im in images:
        sha = hashlib.sha256(im.data).hexdigest()
        filename = sha + im.suffix
        if not (store / filename).exists():
            tmp = store / f"{filename}.tmp"
            tmp.write_bytes(im.data)
            tmp.replace(store / filename)
        campaign.images.append(
            Image(
                scene=im.scene,
                condition=im.condition,
                sha256=sha,
                filename=filename,
                width=im.width,
                height=im.height,
                roi=list(im.roi) if im.roi else None,
                source_path=str(im.source),
                source_sha256=im.source_sha256,
                conversion=im.conversion,
            )
        )
    db.commit()
    return Created(campaign, True, image_warnings(images, spec))


def _check_unchanged(campaign: Campaign, located: list) -> None:
    """Refuse when a file the campaign was made from now has other bytes."""
    stored = {(im.scene, im.condition): im for im in campaign.images}
    for scene, condition, file, _roi in located:
        row = stored.get((scene, condition))
        if row is None or row.source_sha256 is None:
            continue
        if file_sha256(file) != row.source_sha256:
            raise InputError(
                f"image {file} ({scene}/{condition}) changed on disk since campaign "
                f"{campaign.name!r} was created: restore it, or create a new campaign"
            )


# ---- running ----------------------------------------------------------------------------

TRANSITIONS = {
    "pause": ({"active"}, "paused"),
    "resume": ({"paused", "closed"}, "active"),
    "close": ({"active", "paused"}, "closed"),
    "archive": ({"active", "paused", "closed"}, "archived"),
}
"""action -> (statuses it applies to, status it leads to)."""


def get_campaign(db: Session, name: str) -> Campaign:
    """The campaign called ``name``; InputError naming the field otherwise."""
    campaign = db.scalar(select(Campaign).where(Campaign.name == name))
    if campaign is None:
        raise InputError(f"no campaign named {name!r}", field="campaign")
    return campaign


def change_status(db: Session, name: str, action: str) -> Campaign:
    """Pause, resume, close or archive a campaign (answers are never touched)."""
    if action not in TRANSITIONS:
        raise InputError(f"action must be one of {sorted(TRANSITIONS)}", field="action")
    begin_write(db)
    campaign = get_campaign(db, name)
    allowed, target = TRANSITIONS[action]
    if campaign.status not in allowed:
        raise InputError(
            f"campaign {name!r} is {campaign.status}: cannot {action} it", field="status"
        )
    campaign.status = target
    db.commit()
    return campaign


@dataclass
class CampaignRow:
    """A campaign as the admin page and ``jod campaign list`` show it."""

    campaign: Campaign
    images: int
    observers: int
    answered: int


def list_campaigns(db: Session) -> list[CampaignRow]:
    """Every campaign with its image, observer and answer counts."""
    images = dict(
        db.execute(select(Image.campaign_id, func.count()).group_by(Image.campaign_id)).all()
    )
    observers = dict(
        db.execute(
            select(Assignment.campaign_id, func.count()).group_by(Assignment.campaign_id)
        ).all()
    )
    answered = dict(
        db.execute(
            select(Trial.campaign_id, func.count())
            .where(Trial.answered_at.is_not(None))
            .group_by(Trial.campaign_id)
        ).all()
    )
    return [
        CampaignRow(c, images.get(c.id, 0), observers.get(c.id, 0), answered.get(c.id, 0))
        for c in db.scalars(select(Campaign).order_by(Campaign.id))
    ]


def delete_campaign(db: Session, name: str) -> None:
    """Delete a campaign that has no answers (one with answers must be archived).

    Under the campaign lock (no planning meanwhile), the unanswered trials go first and the
    answers are counted after: an answer committed in between keeps its row and is counted,
    so no answer is ever deleted."""
    begin_write(db)
    campaign = get_campaign(db, name)
    cid = campaign.id
    db.execute(select(Campaign.id).where(Campaign.id == cid).with_for_update())
    db.execute(delete(Trial).where(Trial.campaign_id == cid, Trial.answered_at.is_(None)))
    answered = db.scalar(select(func.count()).where(Trial.campaign_id == cid))
    if answered:
        db.rollback()
        raise InputError(
            f"campaign {name!r} has {answered} answers: it cannot be deleted; "
            "archive it instead (its answers stay exportable)",
            field="campaign",
        )
    for table, column in (
        (ActivePair, ActivePair.campaign_id),
        (ActiveGroup, ActiveGroup.campaign_id),
        (PairCount, PairCount.campaign_id),
        (ObserverSession, ObserverSession.campaign_id),
        (Assignment, Assignment.campaign_id),
        (Image, Image.campaign_id),
    ):
        db.execute(delete(table).where(column == cid))
    db.execute(delete(Campaign).where(Campaign.id == cid))
    db.commit()
