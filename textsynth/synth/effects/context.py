"""What a fill effect sees of one word: the final background, the word's glyph alpha and geometry."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class FillContext:
    bg: np.ndarray  # (h, w, 3) uint8, the background the word is composited on (t_b before camera)
    alpha: np.ndarray  # (h, w) float32 glyph alpha of this word
    text_xy: tuple[np.ndarray, np.ndarray] | None  # text-space x, y of every output pixel (gradient)
    box: tuple[float, float, float, float]  # the word's text-space box x0, y0, x1, y1
    px_per_em: float
    region: np.ndarray  # bool, where either word has ink (dilated)
    shared: dict[str, Any] = field(default_factory=dict)  # per-sample results both words reuse
