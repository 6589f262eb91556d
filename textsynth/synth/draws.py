"""Draw primitives shared by the effect modules and the background crop (explicit rng, fixed draw order)."""
from __future__ import annotations

import numpy as np


def sometimes(rng: np.random.Generator, p: float, bounds: tuple[float, float]) -> float:
    """With probability p a value uniform in `bounds`, else 0.0 (0 = off). Draws the coin, then the value."""
    return float(rng.uniform(*bounds)) if rng.random() < p else 0.0
