"""Width bucketing in every loader mode (map-style sampler, streaming, online) yields exactly the batches
recorded from the loader before it became the `textsynth.loading` package (same seeds, same configs).

EXPECTED was recorded once from the former single-module loader (commit 2e01113, `textsynth/loader.py`)
with the same calls; the streaming cases read a folder of real shards whose sample sizes come from an
explicit rng (no rendering), the online cases render the `smoke` recipe.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from textsynth.loading import WidthBucketBatchSampler, make_online_loader, make_stream_loader
from textsynth.sample import IMAGE_CHANNELS, IMAGE_KEYS, Sample
from textsynth.shards.dataset import shard_name, write_dataset_metadata
from textsynth.shards.writer import write_shard

SAMPLER_CASES = {
    "map_default": {"n": 203, "batch_size": 8, "seed": 0, "bucket_batches": 4},
    "map_seed3_epoch2": {"n": 203, "batch_size": 8, "seed": 3, "epoch": 2, "bucket_batches": 3},
    "map_world3_tail": {"n": 100, "batch_size": 7, "seed": 1, "world_size": 3, "bucket_batches": 2},
    "map_drop_last": {"n": 100, "batch_size": 16, "seed": 2, "world_size": 2, "drop_last": True, "bucket_batches": 2},
    "map_fill_last": {"n": 100, "batch_size": 16, "seed": 2, "world_size": 2, "fill_last": True, "bucket_batches": 2},
    "map_no_shuffle": {"n": 90, "batch_size": 10, "seed": 0, "shuffle": False, "bucket_batches": 3},
    "map_shard_windows": {"n": 150, "batch_size": 6, "seed": 4, "bucket_batches": 3, "shards_per_window": 2},
    "map_height48": {"n": 120, "batch_size": 9, "seed": 5, "height": 48, "bucket_batches": 5},
}
STREAM_CASES = {
    "stream_default": {"batch_size": 5, "seed": 0, "epoch": 0, "drop_last": False},
    "stream_seed7_epoch1": {"batch_size": 4, "seed": 7, "epoch": 1, "drop_last": False},
    "stream_drop_last": {"batch_size": 6, "seed": 2, "epoch": 0, "drop_last": True},
    "stream_height48": {"batch_size": 5, "seed": 1, "epoch": 0, "drop_last": False, "height": 48},
}
ONLINE_CASES = {
    "online_default": {"batch_size": 4, "num_samples": 14, "seed": 9, "bucket_batches": 2, "drop_last": False},
    "online_drop_last": {"batch_size": 3, "num_samples": 13, "seed": 5, "bucket_batches": 3, "drop_last": True},
}
STREAM_SHARDS = (17, 11, 14)  # rows per shard of the streamed folder


def sampler_widths(case: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(widths, heights, shard_ends) of a synthetic dataset of case["n"] samples, drawn from an explicit rng."""
    rng = np.random.default_rng([case["n"], case["seed"]])
    widths = rng.integers(16, 400, case["n"])
    heights = rng.choice([32, 48, 64, 80], case["n"])
    ends = np.cumsum(rng.multinomial(case["n"] - 5, np.full(5, 0.2)) + 1)
    return widths, heights, ends


def write_random_dataset(root: str) -> str:
    """A complete dataset folder of real lz4 shards whose samples have rng-drawn sizes (blank images)."""
    rng = np.random.default_rng(11)
    Path(root).mkdir(parents=True)
    infos, i = [], 0
    for k, rows in enumerate(STREAM_SHARDS):
        samples = []
        for _ in range(rows):
            h, w = int(rng.choice([32, 48, 64])), int(rng.integers(20, 300))
            images = {key: np.zeros((h, w, 3) if IMAGE_CHANNELS[key] == 3 else (h, w), np.uint8) for key in IMAGE_KEYS}
            samples.append(Sample(images, {"id": f"r-{i}", "text_s": "a", "text_t": "b", "index": i}))
            i += 1
        infos.append(write_shard(Path(root) / shard_name(k, len(STREAM_SHARDS)), samples, "lz4"))
    write_dataset_metadata(None, root, "lz4", infos, seed=0, pipeline="random-sizes")
    return root


@pytest.fixture(scope="module")
def random_root(tmp_path_factory) -> str:
    return write_random_dataset(str(tmp_path_factory.mktemp("sampler") / "ds"))


@pytest.mark.parametrize("name", sorted(SAMPLER_CASES))
def test_map_style_batches_unchanged(name):
    case = SAMPLER_CASES[name]
    w, h, ends = sampler_widths(case)
    sampler = WidthBucketBatchSampler(
        w, case["batch_size"], heights=h, height=case.get("height", 64), seed=case["seed"], epoch=case.get("epoch", 0),
        rank=0, world_size=case.get("world_size", 1), shuffle=case.get("shuffle", True),
        drop_last=case.get("drop_last", False), fill_last=case.get("fill_last", False),
        bucket_batches=case["bucket_batches"], shard_ends=ends if case.get("shards_per_window") else None,
        shards_per_window=case.get("shards_per_window"))
    assert [b.tolist() for b in sampler.global_batches()] == EXPECTED[name]


@pytest.mark.parametrize("name", sorted(STREAM_CASES))
def test_streaming_batches_unchanged(random_root, name):
    case = STREAM_CASES[name]
    loader = make_stream_loader(random_root, case["batch_size"], ("mask_t",), num_workers=0, seed=case["seed"],
                                epoch=case["epoch"], drop_last=case["drop_last"], height=case.get("height", 64),
                                poll_interval=0.01)
    assert [b["index"].tolist() for b in loader] == EXPECTED[name]


@pytest.mark.parametrize("name", sorted(ONLINE_CASES))
def test_online_batches_unchanged(name):
    case = ONLINE_CASES[name]
    loader = make_online_loader("smoke", case["batch_size"], ("mask_t",), num_samples=case["num_samples"],
                                seed=case["seed"], num_workers=0, bucket_batches=case["bucket_batches"],
                                drop_last=case["drop_last"])
    assert [b["index"].tolist() for b in loader] == EXPECTED[name]


EXPECTED: dict[str, list[list[int]]] = {'map_default': [[30, 132, 177, 16, 198, 43, 192, 42], [76, 200, 86, 73, 202, 113, 104, 125],
                 [167, 99, 160, 0, 90, 65, 91, 54], [190, 170, 70, 137, 165, 201, 112, 149],
                 [51, 185, 166, 101, 7, 56, 69, 58], [172, 34, 38, 20, 55, 52, 151, 27],
                 [193, 63, 96, 61, 31, 176, 26, 14], [116, 83, 10, 123, 147, 5, 35, 36],
                 [126, 72, 140, 39, 119, 159, 154, 144], [78, 95, 120], [85, 67, 4, 145, 45, 66, 146, 108],
                 [107, 21, 3, 150, 143, 153, 22, 148], [191, 9, 181, 138, 48, 37, 74, 129],
                 [117, 161, 194, 131, 183, 197, 174, 111], [136, 98, 189, 94, 28, 118, 133, 8],
                 [81, 163, 128, 196, 19, 178, 135, 79], [187, 57, 199, 158, 62, 134, 24, 40],
                 [68, 92, 139, 105, 155, 6, 171, 71], [103, 100, 23, 180, 179, 44, 110, 15],
                 [53, 142, 102, 124, 87, 122, 82, 64], [127, 182, 29, 169, 184, 33, 121, 59],
                 [93, 47, 186, 18, 106, 141, 173, 97], [11, 88, 50, 130, 164, 1, 114, 2],
                 [75, 162, 80, 156, 152, 13, 41, 84], [157, 195, 17, 25, 60, 109, 89, 175],
                 [49, 77, 32, 168, 12, 188, 46, 115]],
 'map_drop_last': [[70, 62, 58, 77, 64, 60, 85, 93, 50, 75, 63, 98, 83, 36, 57, 2],
                   [4, 35, 78, 49, 39, 32, 95, 40, 15, 9, 51, 27, 21, 12, 89, 8],
                   [13, 73, 69, 91, 86, 52, 94, 5, 92, 53, 56, 11, 25, 28, 18, 59],
                   [16, 74, 0, 67, 29, 37, 87, 44, 96, 17, 80, 22, 1, 46, 43, 24],
                   [20, 55, 97, 82, 19, 41, 38, 26, 81, 45, 54, 23, 99, 68, 33, 3],
                   [48, 71, 34, 10, 14, 42, 84, 79, 61, 66, 47, 88, 6, 90, 7, 76]],
 'map_fill_last': [[4, 35, 78, 49, 39, 32, 95, 40, 15, 9, 51, 27, 21, 12, 89, 8],
                   [13, 73, 69, 91, 86, 52, 94, 5, 92, 53, 56, 11, 25, 28, 18, 59],
                   [71, 34, 10, 14, 42, 84, 79, 61, 47, 88, 30, 31, 72, 90, 7, 76],
                   [70, 62, 58, 77, 64, 60, 85, 93, 50, 75, 63, 98, 83, 36, 57, 2],
                   [16, 74, 0, 67, 29, 37, 87, 44, 96, 17, 80, 22, 1, 46, 43, 24],
                   [20, 55, 97, 82, 19, 41, 38, 26, 81, 45, 54, 23, 99, 68, 33, 3],
                   [48, 71, 34, 10, 14, 42, 84, 79, 61, 66, 47, 88, 6, 90, 7, 76],
                   [13, 73, 65, 69, 91, 52, 94, 5, 92, 53, 56, 11, 25, 28, 59, 48]],
 'map_height48': [[59, 11, 7, 119, 45, 21, 12, 97, 93], [18, 77, 113, 101, 105, 115, 112, 44, 23],
                  [114, 110, 16, 107, 48, 109, 80, 61, 63], [46, 76, 47, 81, 65, 91, 28, 73, 32],
                  [79, 94, 39, 43, 27, 87, 29, 4, 70], [14, 117, 116, 15, 8, 53, 37, 10, 64],
                  [95, 38, 100, 58, 84, 74, 31, 34, 55], [52, 33, 68], [82, 90, 25, 0, 57, 92, 104, 42, 102],
                  [98, 71, 88, 86, 66, 20, 51, 103, 49], [75, 30, 9, 19, 26, 106, 17, 24, 54],
                  [85, 67, 5, 83, 50, 89, 78, 1, 40], [99, 13, 2, 22, 3, 111, 72, 60, 6],
                  [69, 118, 108, 36, 56, 62, 96, 35, 41]],
 'map_no_shuffle': [[19, 20, 2, 11, 21, 18, 6, 5, 8, 17], [24, 4, 1, 22, 7, 0, 23, 25, 28, 10],
                    [27, 3, 16, 12, 15, 26, 29, 9, 13, 14], [53, 52, 35, 57, 40, 39, 59, 38, 58, 30],
                    [49, 31, 34, 45, 46, 55, 41, 56, 43, 42], [32, 48, 47, 44, 54, 50, 33, 51, 37, 36],
                    [71, 60, 65, 81, 89, 72, 88, 83, 64, 85], [79, 69, 76, 62, 84, 75, 67, 68, 87, 63],
                    [61, 70, 80, 73, 78, 86, 66, 82, 74, 77]],
 'map_seed3_epoch2': [[10, 99, 166, 45, 137, 18, 103, 155], [39, 126, 142, 87, 165, 95, 26, 178],
                      [112, 202, 149, 69, 163, 6, 68, 96], [33, 51, 151, 175, 107, 106, 111, 118],
                      [5, 152, 34, 66, 67, 9, 120, 113], [36, 16, 150, 154, 200, 82, 48, 157],
                      [62, 52, 22, 133, 193, 2, 24, 139], [128, 93, 70, 122, 127, 0, 49, 98],
                      [108, 1, 130, 89, 76, 58, 167, 194], [19, 197, 190, 84, 136, 7, 13, 185],
                      [115, 159, 11, 40, 189, 143, 46, 53], [8, 123, 28, 29, 41, 188, 85, 14],
                      [173, 43, 131, 55, 56, 183, 171, 168], [114, 158, 37, 196, 90, 57, 176, 65],
                      [110, 102, 83, 3, 86, 181, 91, 109], [144, 195, 4, 61, 187, 199, 25, 21],
                      [47, 80, 42, 124, 184, 156, 125, 23], [88, 17, 79, 121, 59, 172, 129, 201],
                      [138, 73, 147, 15, 198, 132, 170, 145], [161, 192, 97, 20, 134, 74, 119, 72],
                      [164, 71, 162, 77, 105, 94, 63, 191], [31, 174, 186], [50, 27, 38, 60, 104, 140, 32, 100],
                      [153, 75, 182, 180, 101, 146, 30, 116], [92, 54, 141, 135, 35, 160, 169, 117],
                      [44, 81, 64, 12, 179, 78, 177, 148]],
 'map_shard_windows': [[68, 142, 73, 130, 72, 114], [64, 126, 137, 147, 127, 132], [122, 146, 145, 61, 79, 75],
                       [121, 113, 62, 77, 144, 124], [74, 148, 69, 80, 129, 85], [84, 71, 120, 82, 134, 140],
                       [143, 118, 135, 66, 112, 119], [115, 76, 81, 136, 131, 116], [125, 83, 123, 139, 70, 128],
                       [43, 67, 138, 63, 28, 14], [65, 133, 78, 141, 9, 13], [44, 18, 42, 117, 149, 6],
                       [51, 60, 35, 29, 5, 8], [32, 58, 46, 3, 24, 52], [31, 37, 20, 39, 16, 15],
                       [55, 56, 7, 45, 10, 4], [2, 12, 53, 26, 41, 47], [50, 25, 57, 48, 0, 36],
                       [30, 38, 54, 21, 23, 40], [59, 1, 34, 19, 33, 106], [49, 27, 11, 17, 88, 22],
                       [97, 95, 86, 105, 107, 94], [101, 111, 92, 108, 93, 100], [87, 98, 99, 89, 104, 90],
                       [109, 96, 102, 103, 91, 110]],
 'map_world3_tail': [[92, 12, 58, 91, 11, 97, 40], [30, 71, 15, 39, 84, 44, 61], [26, 37, 1, 10, 83, 96, 93],
                     [25, 49, 4, 9, 57, 0, 95], [88, 35, 7, 3, 64, 21, 27], [82, 36, 51, 42, 32, 53],
                     [78, 89, 33, 18, 90, 24, 86], [75, 47, 80, 54, 17, 62, 60], [81, 20, 34, 67, 8, 55, 6],
                     [45, 14, 87, 43, 94, 70, 19], [46, 74, 50, 59, 77], [69, 2, 72, 41, 76],
                     [73, 28, 63, 66, 23, 29, 79], [85, 5, 99, 16, 48, 38, 56], [68, 22, 65, 52, 31, 13, 98]],
 'online_default': [[1, 3, 7, 0], [2, 5, 6, 4], [10, 13, 8, 12], [9, 11]],
 'online_drop_last': [[1, 7, 5], [6, 4, 3], [8, 2, 0], [11, 10, 12]],
 'stream_default': [[3, 6, 14, 7, 4], [8, 15, 11, 5, 16], [13, 0, 1, 9, 12],
                    [4294967296, 4294967297, 2, 4294967299, 4294967301],
                    [4294967305, 4294967300, 4294967302, 4294967298, 4294967304],
                    [8589934604, 8589934593, 8589934596, 8589934595, 4294967303],
                    [8589934600, 8589934592, 8589934597, 4294967306, 8589934602],
                    [8589934599, 10, 8589934594, 8589934601, 8589934605], [8589934603, 8589934598]],
 'stream_drop_last': [[3, 14, 4, 13, 0, 1], [9, 12, 8, 11, 5, 16],
                      [6, 4294967303, 10, 4294967300, 4294967302, 4294967298],
                      [4294967304, 4294967296, 2, 15, 4294967306, 4294967301],
                      [8589934604, 8589934593, 7, 8589934603, 4294967305, 8589934596],
                      [4294967297, 8589934592, 8589934597, 8589934598, 4294967299, 8589934602],
                      [8589934595, 8589934599, 8589934594, 8589934601, 8589934605, 8589934600]],
 'stream_height48': [[3, 6, 14, 7, 4], [13, 0, 9, 2, 12], [8, 15, 11, 5, 16],
                     [4294967305, 4294967303, 10, 4294967302, 1],
                     [4294967298, 4294967297, 4294967299, 4294967306, 4294967301],
                     [8589934605, 8589934601, 4294967300, 4294967304, 8589934600],
                     [4294967296, 8589934592, 8589934597, 8589934598, 8589934602],
                     [8589934604, 8589934593, 8589934603, 8589934599, 8589934594], [8589934596, 8589934595]],
 'stream_seed7_epoch1': [[3, 6, 14, 4], [15, 11, 5, 16], [13, 0, 10, 1], [9, 2, 12, 8],
                         [4294967302, 4294967298, 4294967304, 4294967296],
                         [4294967297, 4294967299, 4294967306, 4294967301], [7, 4294967305, 4294967303, 4294967300],
                         [8589934594, 8589934601, 8589934605, 8589934600],
                         [8589934592, 8589934597, 8589934598, 8589934602],
                         [8589934604, 8589934603, 8589934595, 8589934599], [8589934593, 8589934596]]}
