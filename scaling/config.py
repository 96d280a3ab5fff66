"""Scaling's options as one validated configuration, which is also the run metadata.

A :class:`ScaleConfig` is checked once, when it is made, and then trusted by the whole
stage; :meth:`ScaleConfig.metadata` is what ``scaling.scale`` writes beside every scale
table (``attrs["jodkit"]``, the Parquet schema or ``<table>.meta.json``), and
:meth:`ScaleConfig.from_metadata` reads it back, so that a table says how to make it again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from scaling.options import (
    ANCHORS,
    DISCONNECTED_POLICIES,
    INTERVALS,
    PRIORS,
    RESAMPLE_UNITS,
    SOLVERS,
    TIE_POLICIES,
)


@dataclass(frozen=True)
class OrderingSpec:
    """Known ordering by condition name: each condition scores at least as high as the next.

    ``OrderingSpec(("noise_0", "noise_1", "noise_2"))`` says more noise is never better.
    """

    chain: tuple[str, ...]
    margin: float = 0.0


@dataclass(frozen=True)
class FixedSpec:
    """Condition ``condition`` has exactly ``value`` JOD."""

    condition: str
    value: float


@dataclass(frozen=True)
class ScaleConfig:
    """How a trial table is scaled (see ``docs/scaling.md``).

    ``prior``: pwcmp's ``gaussian`` distance prior or ``none``; ``anchor``: ``mean0`` or
    ``fix0``; ``ties``: ``drop`` or ``split``; ``solver``: ``exact``, or ``cvxpy`` (prior
    ``none``) for the constraints ``orderings`` and ``fixed``; ``disconnected``:
    ``separate`` or ``pwcmp``; ``bootstrap``: resamples (0: none) of ``resample`` units
    (``observer`` or ``trial``) drawn from ``seed``; ``interval``: pwcmp's 2.5 and 97.5
    ``percentile`` or the small-sample ``expanded`` one
    (:func:`scaling.thurstone.expanded_alpha`).
    """

    prior: str = "gaussian"
    anchor: str = "mean0"
    ties: str = "drop"
    solver: str = "exact"
    disconnected: str = "separate"
    orderings: tuple[OrderingSpec, ...] = field(default=())
    fixed: tuple[FixedSpec, ...] = field(default=())
    bootstrap: int = 0
    resample: str = "observer"
    seed: int = 0
    interval: str = "percentile"

    def __post_init__(self) -> None:
        for name, allowed in (
            ("prior", PRIORS),
            ("anchor", ANCHORS),
            ("ties", TIE_POLICIES),
            ("solver", SOLVERS),
            ("disconnected", DISCONNECTED_POLICIES),
            ("resample", RESAMPLE_UNITS),
            ("interval", INTERVALS),
        ):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, not {getattr(self, name)!r}")
        object.__setattr__(self, "orderings", tuple(self.orderings))
        object.__setattr__(self, "fixed", tuple(self.fixed))
        if self.solver == "cvxpy" and self.prior != "none":
            raise ValueError(
                "the cvxpy solver handles the convex problem only: use prior='none' "
                "(pwcmp's Gaussian prior is not convex)"
            )
        if (self.orderings or self.fixed) and self.solver != "cvxpy":
            raise ValueError("orderings and fixed scores need solver='cvxpy'")
        for name in ("bootstrap", "seed"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"{name} must be a whole number, not {value!r}")
        if self.bootstrap < 0:
            raise ValueError(f"bootstrap must be >= 0, not {self.bootstrap}")

    def metadata(self) -> dict[str, Any]:
        """The run metadata of these options (JSON types only)."""
        return {
            "prior": self.prior,
            "anchor": self.anchor,
            "ties": self.ties,
            "solver": self.solver,
            "disconnected": self.disconnected,
            "orderings": [{"chain": list(o.chain), "margin": o.margin} for o in self.orderings],
            "fixed": {f.condition: f.value for f in self.fixed},
            "bootstrap_samples": self.bootstrap,
            "bootstrap_unit": self.resample if self.bootstrap else None,
            "seed": self.seed,
            "interval": self.interval,
        }

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, Any]) -> ScaleConfig:
        """The configuration a scale table's metadata records (keys it lacks keep their
        defaults)."""
        defaults = cls()
        return cls(
            prior=metadata.get("prior", defaults.prior),
            anchor=metadata.get("anchor", defaults.anchor),
            ties=metadata.get("ties", defaults.ties),
            solver=metadata.get("solver", defaults.solver),
            disconnected=metadata.get("disconnected", defaults.disconnected),
            orderings=tuple(
                OrderingSpec(tuple(o["chain"]), float(o.get("margin", 0.0)))
                for o in metadata.get("orderings", ())
            ),
            fixed=tuple(FixedSpec(c, float(v)) for c, v in metadata.get("fixed", {}).items()),
            bootstrap=int(metadata.get("bootstrap_samples", defaults.bootstrap)),
            resample=metadata.get("bootstrap_unit") or defaults.resample,
            seed=int(metadata.get("seed", defaults.seed)),
            interval=metadata.get("interval", defaults.interval),
        )
