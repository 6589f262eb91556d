"""What a generate run produces: the recipe, how many samples, how they split into shards."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ..config import SynthConfig
from ..shards.encodings import check_encoding

DEFAULT_SHARD_SIZE = 1000


@dataclass(frozen=True)
class Plan:
    """A generate job; its identity (all but `out`) must match an existing folder's to resume it.

    Shard k holds samples [k*shard_size, min(count, (k+1)*shard_size)), each a pure function of
    (config, seed, index), so the bytes do not depend on which worker renders which shard.
    """

    out: str
    count: int
    cfg: SynthConfig
    shard_size: int = DEFAULT_SHARD_SIZE
    encoding: str = "lz4"

    def __post_init__(self) -> None:
        if self.count < 1:
            raise ValueError(f"count must be >= 1, got {self.count}")
        if self.shard_size < 1:
            raise ValueError(f"shard_size must be >= 1, got {self.shard_size}")
        check_encoding(self.encoding)

    @property
    def num_shards(self) -> int:
        return math.ceil(self.count / self.shard_size)

    def shard_range(self, k: int) -> tuple[int, int]:
        """The sample indices [start, stop) of shard k."""
        return k * self.shard_size, min(self.count, (k + 1) * self.shard_size)

    def identity(self) -> dict[str, Any]:
        return {"count": self.count, "seed": self.cfg.seed, "shard_size": self.shard_size,
                "config": self.cfg.to_dict()}
