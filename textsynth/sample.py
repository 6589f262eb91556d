"""The sample contract: the eight SRNet images plus metadata, shared by every module."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

# Order is the canonical column / contact-sheet order.
IMAGE_KEYS: tuple[str, ...] = ("i_s", "i_t", "t_sk", "t_t", "t_b", "t_f", "mask_t", "mask_s")
# 3 = RGB uint8 (H, W, 3); 1 = single channel uint8 (H, W).
IMAGE_CHANNELS: dict[str, int] = {
    "i_s": 3, "i_t": 3, "t_sk": 1, "t_t": 3, "t_b": 3, "t_f": 3, "mask_t": 1, "mask_s": 1,
}
GREY = 127  # background value of i_t and t_t


@dataclass
class Sample:
    """One training pair: images keyed by IMAGE_KEYS, all (H, W[, 3]) uint8, plus JSON-able metadata.

    meta holds at least: id, text_s, text_t, font, style (the full style draw), background, seed,
    and per-character boxes for both words.
    """

    images: dict[str, np.ndarray]
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def height(self) -> int:
        return int(self.images["i_s"].shape[0])

    @property
    def width(self) -> int:
        return int(self.images["i_s"].shape[1])
