"""Oblique (faux italic): a slant added to the warp's shear, so both words lean alike.
Reads `style.oblique_p`, `style.oblique_deg`."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..draws import sometimes

if TYPE_CHECKING:  # config imports the effects package
    from ...config import StyleConfig



@dataclass(frozen=True)
class Params:
    deg: float  # 0 = off


def draw(rng: np.random.Generator, cfg: StyleConfig) -> Params:
    return Params(sometimes(rng, cfg.oblique_p, cfg.oblique_deg))
