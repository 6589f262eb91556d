"""The evaluation table: the generator's figures next to the identity baseline (i_s copied as o_f).

A model that does not beat copying its input has not learnt the edit; the table says so directly.
Used by validation during training, `textsynth evaluate` and benchmarks/bench_learn.py.
"""
from __future__ import annotations

from typing import Any

import torch

from ..sample import SRNET_KEYS
from .infer import run_generator
from .metrics import MetricSums, gain, image_metrics, quantise, skeleton_dice, text_region_l1

EVAL_KEYS = SRNET_KEYS


@torch.no_grad()
def evaluate(gen: torch.nn.Module, root: str, *, batch_size: int = 8, height: int = 64,
             device: torch.device | str = "cpu", amp_dtype: torch.dtype | None = None,
             max_batches: int | None = None) -> dict[str, Any]:
    """{"samples", "model": {...}, "identity": {...}, "gain": {...}} on the first batches of `root`.

    model: mse, psnr, ssim, ssim_mostel, l1 of o_f vs t_f, text_l1 (o_t vs t_t inside mask_t),
    skeleton_dice (o_sk vs t_sk), bg_l1 (o_b vs t_b); identity: the same o_f figures for i_s;
    gain: model minus identity (psnr_db, ssim) and error ratios (mse_ratio, l1_ratio; < 1 = better).
    The order is fixed (no shuffle), so successive evaluations see the same samples. Figures are means
    over samples (PSNR over samples with a non-zero error, as MOSTEL's script does).
    """
    from ..loading import make_loader

    device = torch.device(device)
    # padded batches, each sample scored on its own width only: at the dataset's height these are the
    # stored images exactly (no resize to a batch width, no padding in the figures)
    loader = make_loader(root, batch_size=batch_size, keys=EVAL_KEYS, num_workers=0, shuffle=False,
                         height=height, fit="pad", pin_memory=False)
    sums = MetricSums()
    n = 0
    for b, batch in enumerate(loader):
        if max_batches is not None and b >= max_batches:
            break
        out = run_generator(gen, batch, device, amp_dtype)
        out = {"o_f": quantise(out["o_f"]), "o_t": quantise(out["o_t"]), "o_b": quantise(out["o_b"]),
               "o_sk": out["o_sk"].double()}
        tgt = {k: batch[k].to(device).double() for k in EVAL_KEYS}
        own = (batch["src_width"].double() * height / batch["src_height"].double()).round().clamp_min(1).long()
        for j, w in enumerate(own.tolist()):
            o = {k: v[j:j + 1, :, :, :w] for k, v in out.items()}
            t = {k: v[j:j + 1, :, :, :w] for k, v in tgt.items()}
            sums.add("model", image_metrics(o["o_f"], t["t_f"]))
            sums.add("identity", image_metrics(t["i_s"], t["t_f"]))
            sums.add("model", {"text_l1": text_region_l1(o["o_t"], t["t_t"], t["mask_t"]),
                               "skeleton_dice": skeleton_dice(o["o_sk"], t["t_sk"]),
                               "bg_l1": (o["o_b"] - t["t_b"]).abs().mean().view(1) / 255.0})
        n += len(own)
    res = sums.result()
    model, ident = res.get("model", {}), res.get("identity", {})
    return {"samples": n, "model": model, "identity": ident, "gain": gain(model, ident)}


def flat(table: dict[str, Any]) -> dict[str, Any]:
    """One-level dict for log lines: model.psnr -> psnr, identity.psnr -> id_psnr, gain.psnr_db -> gain_psnr_db."""
    out: dict[str, Any] = {"samples": table["samples"]}
    for group, prefix in (("model", ""), ("identity", "id_"), ("gain", "gain_")):
        for k, v in table[group].items():
            out[prefix + k] = v
    return out
