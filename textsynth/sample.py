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
RGB_KEYS: tuple[str, ...] = tuple(k for k in IMAGE_KEYS if IMAGE_CHANNELS[k] == 3)
MASK_KEYS: tuple[str, ...] = tuple(k for k in IMAGE_KEYS if IMAGE_CHANNELS[k] == 1)  # t_sk, mask_t, mask_s
# what SRNet trains and is evaluated on: its inputs, its four targets, and the text mask for the masked L1
SRNET_KEYS: tuple[str, ...] = ("i_s", "i_t", "t_sk", "t_t", "t_b", "t_f", "mask_t")
GREY = 127  # background value of i_t and t_t
SRNET_MULTIPLE = 8  # SRNet halves the resolution three times: input height and width are multiples of 8


def rounded_width(width: float, multiple: int = SRNET_MULTIPLE) -> int:
    """The batch-width rule: `width` rounded to the nearest multiple of `multiple`, at least one multiple."""
    return max(multiple, int(round(width / multiple)) * multiple)


def json_default(value: Any) -> Any:
    """JSON for the numpy values and sets that metadata may hold (json.dumps(..., default=json_default))."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


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
