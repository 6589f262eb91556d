"""Letter tracking: extra space after every character, in em; none for scripts that need shaping
(their words are one shaped run). Reads `style.tracking_p`, `style.tracking`."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ...scripts import needs_shaping

from ..draws import sometimes

if TYPE_CHECKING:  # config imports the effects package
    from ...config import StyleConfig


@dataclass(frozen=True)
class Params:
    em: float  # 0 = off


def draw(rng: np.random.Generator, cfg: StyleConfig) -> Params:
    return Params(sometimes(rng, cfg.tracking_p, cfg.tracking))


def em_for(p: Params, text: str) -> float:
    """The tracking applied to `text`."""
    return 0.0 if needs_shaping(text) else p.em
