"""Data-loading throughput profiler: the Arrow shard loader against the old PNG-folder way, per worker count.

For each worker count: samples/s and MB/s (decoded uint8 image bytes delivered as collated batches)
over wall time, and CPU-ms per sample = CPU time (user + system) of the main process and of every
DataLoader worker process over the measured batches, divided by the samples delivered. Worker CPU
comes from psutil per worker PID (persistent workers are never reaped, so getrusage(RUSAGE_CHILDREN)
would miss them). The PNG baseline exports the same samples to an SRNet-Datagen folder once and
reads them with cv2.imread, through the same sampler and the same collate.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import cv2
import numpy as np

from textsynth import atomic
from textsynth.procstats import proc_cpu_seconds, proc_memory  # noqa: F401 (re-exported for benchmarks)
from textsynth.sample import IMAGE_CHANNELS, IMAGE_KEYS, rounded_width

def loader_worker_pids(iterator: Any) -> list[int]:
    """PIDs of a DataLoader iterator's worker processes (empty for num_workers=0)."""
    return [w.pid for w in getattr(iterator, "_workers", []) if w.pid is not None]


@dataclass
class Measurement:
    """One loader at one worker count."""

    loader: str
    workers: int
    batches: int
    samples: int
    seconds: float
    cpu_seconds: float
    bytes: int
    samples_per_s: float = 0.0
    mb_per_s: float = 0.0
    cpu_ms_per_sample: float = 0.0
    samples_per_cpu_s: float = 0.0
    mean_batch_width: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        s = max(self.seconds, 1e-9)
        self.samples_per_s = self.samples / s
        self.mb_per_s = self.bytes / s / 1e6
        self.cpu_ms_per_sample = 1e3 * self.cpu_seconds / max(self.samples, 1)
        self.samples_per_cpu_s = self.samples / max(self.cpu_seconds, 1e-9)


def measure(loader: Iterable[dict[str, Any]], name: str, workers: int, batches: int = 50, warmup: int = 4,
            on_batch: Callable[[dict[str, Any]], Any] | None = None) -> Measurement:
    """Time `batches` batches after `warmup` ones, restarting epochs as needed; CPU of main + workers."""
    from textsynth.loading import batch_nbytes

    epoch = 0

    def new_iter() -> Any:
        nonlocal epoch
        if hasattr(loader, "set_epoch"):
            loader.set_epoch(epoch)
        epoch += 1
        return iter(loader)

    it = new_iter()

    def next_batch() -> dict[str, Any]:
        nonlocal it
        for _ in range(2):
            try:
                return next(it)
            except StopIteration:
                it = new_iter()
        raise RuntimeError(f"{name}: the loader yields no batches")

    for _ in range(warmup):
        next_batch()
    pids = loader_worker_pids(it)
    main0, workers0 = time.process_time(), sum(proc_cpu_seconds(p) for p in pids)
    t0 = time.perf_counter()
    samples = nbytes = 0
    widths = []
    for _ in range(batches):
        b = next_batch()
        samples += len(b["id"])
        nbytes += batch_nbytes(b)
        widths.append(next(v.shape[-1] for k, v in b.items() if k in IMAGE_CHANNELS))
        if on_batch is not None:
            on_batch(b)
    seconds = time.perf_counter() - t0
    main1, workers1 = time.process_time(), sum(proc_cpu_seconds(p) for p in pids)
    del it
    main_cpu, worker_cpu = main1 - main0, workers1 - workers0
    return Measurement(name, workers, batches, samples, seconds, main_cpu + worker_cpu, nbytes,
                       mean_batch_width=float(np.mean(widths)),
                       extra={"main_cpu_ms_per_sample": 1e3 * main_cpu / max(samples, 1),
                              "worker_cpu_ms_per_sample": 1e3 * worker_cpu / max(samples, 1)})


# --- the PNG-folder baseline ----------------------------------------------------------------------

def _imread(path: str, key: str) -> np.ndarray:
    if IMAGE_CHANNELS[key] == 3:
        img = cv2.imread(path, cv2.IMREAD_COLOR)
        if img is None:
            raise OSError(f"{path}: cannot read")
        return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    img = cv2.imread(path, cv2.IMREAD_GRAYSCALE)
    if img is None:
        raise OSError(f"{path}: cannot read")
    return img


class PngFolderDataset:
    """The old way: an SRNet-Datagen folder (one PNG per image kind per sample) read with cv2.imread.

    Map-style, `ds[indices] -> batch` with the same BatchCollator as the Arrow loader, so the only
    difference measured is storage + decoding. Sample i is the i-th name of i_s/ in natural order.
    """

    def __init__(self, folder: str | os.PathLike[str], keys: Sequence[str] = IMAGE_KEYS, height: int = 64,
                 fit: str = "resize", multiple: int = 8, texts: bool = True) -> None:
        import torch.utils.data  # noqa: F401  (same environment as the real loader)

        from textsynth.loading import BatchCollator, CollateOptions
        from textsynth.interop.srnet_folder import _natural_key

        self.folder = str(folder)
        self.collator = BatchCollator(keys, CollateOptions(height=height, fit=fit, multiple=multiple))
        names = sorted((p for p in os.listdir(os.path.join(self.folder, "i_s")) if p.endswith(".png")),
                       key=_natural_key)
        self.names = np.array(names)
        labels: dict[str, tuple[str, str]] = {}
        if texts:
            for field_, file in (("text_s", "i_s.txt"), ("text_t", "i_t.txt")):
                path = os.path.join(self.folder, file)
                if os.path.isfile(path):
                    with open(path, encoding="utf-8") as f:
                        for line in f:
                            name, _, text = line.rstrip("\n").partition(" ")
                            s, t = labels.get(name, ("", ""))
                            labels[name] = (text, t) if field_ == "text_s" else (s, text)
        self.text_s = np.array([labels.get(n, ("", ""))[0] for n in names], dtype=object)
        self.text_t = np.array([labels.get(n, ("", ""))[1] for n in names], dtype=object)

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, indices: Any) -> dict[str, Any]:
        from textsynth.sample import Sample

        idx = np.atleast_1d(np.asarray(indices, np.int64))
        samples = []
        for i in idx:
            name = str(self.names[i])
            images = {k: _imread(os.path.join(self.folder, k, name), k) for k in self.collator.keys}
            samples.append(Sample(images=images, meta={"id": name, "text_s": self.text_s[i],
                                                                   "text_t": self.text_t[i], "index": int(i)}))
        return self.collator.collate_samples(samples, index=idx)


def export_png_folder(dataset_root: str, out_dir: str, limit: int | None = None) -> int:
    """Export the first `limit` samples (all if None) of a dataset to an SRNet folder (export_srnet's layout)."""
    from textsynth.shards.dataset import Dataset
    from textsynth.interop.srnet_folder import write_srnet_folder

    ds = Dataset(dataset_root)
    try:
        n = len(ds) if limit is None else min(limit, len(ds))
        return write_srnet_folder(islice(iter(ds), n), out_dir, count=n)
    finally:
        ds.close()


def make_png_loader(folder: str, widths: np.ndarray, heights: np.ndarray, batch_size: int = 64,
                    keys: Sequence[str] = IMAGE_KEYS, num_workers: int = 2, seed: int = 0, height: int = 64,
                    prefetch_factor: int | None = None, fit: str = "resize"):
    """A DataLoader over a PNG folder with the same width-bucketing sampler and collate as make_loader."""
    from textsynth.loading import ShardLoader, WidthBucketBatchSampler, dataloader_options

    ds = PngFolderDataset(folder, keys, height, fit)
    n = len(ds)
    sampler = WidthBucketBatchSampler(widths[:n], batch_size, heights=heights[:n], height=height, seed=seed,
                                      rank=0, world_size=1)
    kw = dataloader_options(num_workers, False, None, prefetch_factor, None, None, 0)
    return ShardLoader(ds, batch_size=None, sampler=sampler, **kw)


class PortPngDataset:
    """The old way as the public PyTorch SRNet port loads data: one sample per __getitem__, each PNG
    read with skimage.io.imread (t_sk and mask_t as grey), collated by `port_collate`."""

    def __init__(self, folder: str | os.PathLike[str], keys: Sequence[str] = IMAGE_KEYS) -> None:
        from textsynth.interop.srnet_folder import _natural_key

        self.folder = str(folder)
        self.keys = tuple(k for k in keys if os.path.isdir(os.path.join(self.folder, k)))
        self.names = np.array(sorted((p for p in os.listdir(os.path.join(self.folder, "i_s")) if p.endswith(".png")),
                                     key=_natural_key))

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, i: int) -> tuple[str, dict[str, np.ndarray]]:
        from skimage import io

        name = str(self.names[i])
        return name, {k: io.imread(os.path.join(self.folder, k, name), as_gray=IMAGE_CHANNELS[k] == 1)
                      for k in self.keys}


def port_collate(batch: list[tuple[str, dict[str, np.ndarray]]], height: int = 64) -> dict[str, Any]:
    """The port's collate: every image resized with skimage.transform.resize to the batch's mean
    aspect-scaled width (a multiple of 8), then normalised to float32 in the worker."""
    import torch
    from skimage.transform import resize

    widths = [imgs["i_s"].shape[1] * height / imgs["i_s"].shape[0] for _, imgs in batch]
    to_w = rounded_width(sum(widths) / len(widths))
    out: dict[str, Any] = {"id": [name for name, _ in batch]}
    for k in batch[0][1]:
        arrs = []
        for _, imgs in batch:
            img = imgs[k]
            if img.dtype != np.uint8:  # as_gray reads come back as floats in [0, 1]
                img = img * 255.0
            r = resize(img, (height, to_w), preserve_range=True)
            arrs.append(r[None] if r.ndim == 2 else r.transpose(2, 0, 1))
        a = np.stack(arrs).astype(np.float32)
        out[k] = torch.from_numpy(a / 127.5 - 1.0 if IMAGE_CHANNELS[k] == 3 else a / 255.0)
    return out


def make_port_loader(folder: str, batch_size: int = 64, keys: Sequence[str] = IMAGE_KEYS, num_workers: int = 2,
                     seed: int = 0, height: int = 64):
    """A plain DataLoader (shuffle, per-sample getitem, worker-side resize + float normalisation)."""
    import functools

    import torch

    g = torch.Generator()
    g.manual_seed(seed)
    return torch.utils.data.DataLoader(PortPngDataset(folder, keys), batch_size=batch_size, shuffle=True,
                                       generator=g, num_workers=num_workers,
                                       collate_fn=functools.partial(port_collate, height=height),
                                       persistent_workers=num_workers > 0)


# --- the whole profile ----------------------------------------------------------------------------

def model_step_rate(device: str, batch_size: int, height: int, width: int) -> tuple[float | None, str]:
    """(samples/s the SRNet training step consumes, message); None when unavailable."""
    try:
        from textsynth.srnet.throughput import step_rate
    except ImportError as exc:
        return None, f"model step rate unavailable: cannot import textsynth.srnet.throughput.step_rate ({exc})"
    try:
        rate = float(step_rate(device, batch_size, height, width))
    except Exception as exc:  # a failing model run must not lose the loader figures
        return None, f"model step rate unavailable: step_rate({device!r}, {batch_size}, {height}, {width}) " \
                     f"failed: {type(exc).__name__}: {exc}"
    return rate, f"SRNet step consumes {rate:.1f} samples/s at batch {batch_size}, {height}x{width} on {device}"


def run_profile(root: str, workers: Sequence[int] = (0, 1, 2, 4), batch_size: int = 64, batches: int = 50,
                warmup: int = 4, keys: Sequence[str] = IMAGE_KEYS, height: int = 64, device: str = "cpu",
                model: str | None = None, png: bool = True, png_dir: str | None = None,
                png_limit: int | None = 2000, png_batches: int | None = None, seed: int = 0,
                fit: str = "resize", verify: str = "once", port_baseline: bool = True, port_batches: int = 8,
                log: Callable[[str], Any] = print) -> dict[str, Any]:
    """Measure the Arrow loader (and the PNG folder) at each worker count; returns the JSON-able report."""
    from textsynth.loading import make_loader, to_device

    import torch

    keys = tuple(keys)
    results: list[Measurement] = []
    ds_info: dict[str, Any] = {}
    arrow_widths: list[float] = []
    for nw in workers:
        loader = make_loader(root, batch_size, keys, num_workers=nw, seed=seed, height=height, fit=fit,
                             verify=verify, pin_memory=device.startswith("cuda"), rank=0, world_size=1)
        if not ds_info:
            ds = loader.dataset
            ds_info = {"root": str(root), "samples": len(ds), "shards": len(ds.shard_paths),
                       "encoding": ds.encoding, "median_width": float(np.median(ds.widths))}
        on_batch = None
        if device != "cpu":
            dev = torch.device(device)

            def on_batch(b: dict[str, Any], dev: torch.device = dev) -> None:
                to_device(b, dev)
        m = measure(loader, "arrow", nw, batches, warmup, on_batch)
        arrow_widths.append(m.mean_batch_width)
        results.append(m)
        log(f"arrow   workers={nw}: {m.samples_per_s:8.0f} samples/s  {m.cpu_ms_per_sample:6.3f} CPU-ms/sample "
            f"(main {m.extra['main_cpu_ms_per_sample']:.3f})")
        del loader
    png_results: list[Measurement] = []
    port_results: list[Measurement] = []
    tmp_png = None
    if png:
        folder = png_dir
        if folder is None or not os.path.isdir(os.path.join(folder, "i_s")):
            if folder is None:
                tmp_png = folder = tempfile.mkdtemp(prefix="textsynth-png-")
            log(f"exporting {png_limit or 'all'} samples to a PNG folder at {folder} ...")
            export_png_folder(root, folder, png_limit)
        from textsynth.loading import CollateOptions, ShardDataset

        full = ShardDataset(root, keys, CollateOptions(height=height))
        try:
            for nw in workers:
                loader = make_png_loader(folder, np.asarray(full.widths), np.asarray(full.heights), batch_size,
                                         keys, nw, seed, height, fit=fit)
                m = measure(loader, "png", nw, png_batches or batches, warmup)
                png_results.append(m)
                log(f"png     workers={nw}: {m.samples_per_s:8.0f} samples/s  {m.cpu_ms_per_sample:6.3f} CPU-ms/sample"
                    " (textsynth's collate)")
                del loader
                if port_baseline:
                    loader = make_port_loader(folder, batch_size, keys, nw, seed, height)
                    m = measure(loader, "png_port", nw, port_batches, min(warmup, 2))
                    port_results.append(m)
                    log(f"port    workers={nw}: {m.samples_per_s:8.0f} samples/s  {m.cpu_ms_per_sample:6.3f} "
                        "CPU-ms/sample (the SRNet port's loader: skimage imread + resize, float in workers)")
                    del loader
        finally:
            if tmp_png:
                shutil.rmtree(tmp_png, ignore_errors=True)
    rows = []
    for m in results:
        row: dict[str, Any] = {"workers": m.workers, "arrow": asdict(m)}
        p = next((q for q in png_results if q.workers == m.workers), None)
        if p is not None:
            row["png"] = asdict(p)
            row["ratio_samples_per_s"] = m.samples_per_s / max(p.samples_per_s, 1e-9)
            row["ratio_cpu_ms_per_sample"] = p.cpu_ms_per_sample / max(m.cpu_ms_per_sample, 1e-9)
        q = next((q for q in port_results if q.workers == m.workers), None)
        if q is not None:
            row["png_port"] = asdict(q)
            row["ratio_vs_port_samples_per_s"] = m.samples_per_s / max(q.samples_per_s, 1e-9)
            row["ratio_vs_port_cpu"] = q.cpu_ms_per_sample / max(m.cpu_ms_per_sample, 1e-9)
        rows.append(row)
    report: dict[str, Any] = {
        "dataset": ds_info, "batch_size": batch_size, "batches": batches, "height": height, "keys": list(keys),
        "fit": fit, "verify": verify, "device": device, "cpu_count": os.cpu_count(), "loadavg_at_end": _loadavg(), "results": rows,
    }
    if model:
        if model != "srnet":
            raise ValueError(f"unknown model {model!r} (only 'srnet')")
        width = rounded_width(float(np.mean(arrow_widths))) if arrow_widths else 128
        rate, msg = model_step_rate(device, batch_size, height, width)
        report["model"] = {"name": model, "width": width, "step_samples_per_s": rate, "message": msg}
        if rate:
            for row in rows:
                row["loader_headroom"] = row["arrow"]["samples_per_s"] / rate
    return report


def _loadavg() -> list[float] | None:
    try:
        return list(os.getloadavg())
    except OSError:
        return None


def write_outputs(report: dict[str, Any], prefix: str) -> tuple[str, str]:
    """Write PREFIX.json and PREFIX.png (samples/s and CPU-ms/sample per worker count); returns both paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    base = Path(prefix)
    if base.suffix in (".json", ".png"):
        base = base.with_suffix("")
    base.parent.mkdir(parents=True, exist_ok=True)
    json_path, png_path = f"{base}.json", f"{base}.png"
    atomic.write_text(json_path, json.dumps(report, indent=2))
    rows = report["results"]
    w = [r["workers"] for r in rows]
    x = np.arange(len(w))
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4))
    has_png = all("png" in r for r in rows)
    bw = 0.38 if has_png else 0.6
    a1.bar(x - (bw / 2 if has_png else 0), [r["arrow"]["samples_per_s"] for r in rows], bw, label="Arrow + LZ4 shards")
    a2.bar(x - (bw / 2 if has_png else 0), [r["arrow"]["cpu_ms_per_sample"] for r in rows], bw, label="Arrow + LZ4 shards")
    if has_png:
        a1.bar(x + bw / 2, [r["png"]["samples_per_s"] for r in rows], bw, label="PNG folder, textsynth collate")
        a2.bar(x + bw / 2, [r["png"]["cpu_ms_per_sample"] for r in rows], bw, label="PNG folder, textsynth collate")
    if all("png_port" in r for r in rows):
        a1.plot(x, [r["png_port"]["samples_per_s"] for r in rows], "rv", label="PNG folder, SRNet port loader")
        a2.plot(x, [r["png_port"]["cpu_ms_per_sample"] for r in rows], "rv", label="PNG folder, SRNet port loader")
    model = report.get("model") or {}
    if model.get("step_samples_per_s"):
        a1.axhline(model["step_samples_per_s"], color="k", ls="--", lw=1, label="SRNet step consumption")
    for ax, title in ((a1, "samples/s (wall)"), (a2, "CPU-ms per sample (main + workers)")):
        ax.set_xticks(x, [str(v) for v in w])
        ax.set_xlabel("DataLoader workers")
        ax.set_title(title)
        ax.legend(fontsize=8)
    fig.suptitle(f"textsynth loader, batch {report['batch_size']}, height {report['height']}, "
                 f"{report['dataset'].get('encoding', '?')}, fit={report.get('fit')}")
    fig.tight_layout()
    with atomic.writing(png_path) as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)
    return json_path, png_path


def render_table(report: dict[str, Any]) -> Any:
    """A rich Table of the report."""
    from rich.table import Table

    model = report.get("model") or {}
    t = Table(title=f"loader throughput: {report['dataset'].get('root', '')} (batch {report['batch_size']}, "
                    f"H={report['height']}, {len(report['keys'])} keys, fit={report.get('fit')})",
              caption="smp/s: samples per wall second; CPU-ms: CPU ms per sample, main + worker processes; "
                      "png: the same PNGs through textsynth's collate; port: the public SRNet port's PNG "
                      "loader (the old way); ratios: arrow over each")
    cols = ["workers", "arrow\nsmp/s", "arrow\nMB/s", "arrow\nCPU-ms", "png\nsmp/s", "png\nCPU-ms",
            "ratio\nsmp/s", "ratio\nCPU", "port\nsmp/s", "port\nCPU-ms", "vs port\nsmp/s", "vs port\nCPU"]
    if model.get("step_samples_per_s"):
        cols.append("head-\nroom")
    for c in cols:
        t.add_column(c, justify="right")
    for r in report["results"]:
        a, p = r["arrow"], r.get("png")
        cells = [str(r["workers"]), f"{a['samples_per_s']:.0f}", f"{a['mb_per_s']:.0f}", f"{a['cpu_ms_per_sample']:.3f}",
                 f"{p['samples_per_s']:.0f}" if p else "-", f"{p['cpu_ms_per_sample']:.3f}" if p else "-",
                 f"{r['ratio_samples_per_s']:.1f}x" if p else "-", f"{r['ratio_cpu_ms_per_sample']:.1f}x" if p else "-"]
        q = r.get("png_port")
        cells += [f"{q['samples_per_s']:.0f}" if q else "-", f"{q['cpu_ms_per_sample']:.3f}" if q else "-",
                  f"{r['ratio_vs_port_samples_per_s']:.1f}x" if q else "-",
                  f"{r['ratio_vs_port_cpu']:.1f}x" if q else "-"]
        if model.get("step_samples_per_s"):
            cells.append(f"{r['loader_headroom']:.2f}")
        t.add_row(*cells)
    return t
