"""Convert between textsynth datasets and the SRNet-Datagen folder layout (one PNG per image kind per sample).

Layout written by `export_srnet` and read by `import_srnet`::

    out_dir/
      i_s/000.png  i_t/000.png  t_sk/000.png  t_t/000.png  t_b/000.png  t_f/000.png  mask_t/000.png  mask_s/000.png
      i_s.txt      one line per sample: "<file name> <text_s>", e.g. "000.png hello"
      i_t.txt      one line per sample: "<file name> <text_t>", e.g. "000.png world"
      meta.jsonl   textsynth extension: {"name": "000.png", "meta": {...}} per line (full Sample.meta)

The same zero-padded file name is used in every folder. RGB images are 3-channel PNGs; t_sk, mask_t
and mask_s are 8-bit greyscale PNGs. Label lines are parsed as `line.rstrip("\\n").split(" ", 1)`
(the convention of SRNet/MOSTEL-style loaders; a text never contains a newline). SRNet-Datagen
itself writes neither mask_s nor labels, so `import_srnet` treats both as optional.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Iterable, Iterator

import cv2
import numpy as np

from textsynth.errors import SrnetFolderError
from textsynth.sample import IMAGE_CHANNELS, IMAGE_KEYS, Sample

REQUIRED_KEYS: tuple[str, ...] = tuple(k for k in IMAGE_KEYS if k != "mask_s")
LABEL_FILES: dict[str, str] = {"text_s": "i_s.txt", "text_t": "i_t.txt"}
COMBINED_LABELS = "labels.txt"  # also read: "<name> <text_s> <text_t>" per line
META_FILE = "meta.jsonl"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
PNG_LEVEL = 3


def _natural_key(name: str) -> list[Any]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def _write_png(path: Path, key: str, array: np.ndarray) -> None:
    img = cv2.cvtColor(array, cv2.COLOR_RGB2BGR) if IMAGE_CHANNELS[key] == 3 else array
    ok, buf = cv2.imencode(".png", img, [cv2.IMWRITE_PNG_COMPRESSION, PNG_LEVEL])
    if not ok:
        raise SrnetFolderError(f"{path}: cv2 could not encode image {key!r} of shape {array.shape}")
    path.write_bytes(buf.tobytes())


def read_image(path: str | os.PathLike[str], key: str) -> np.ndarray:
    """Read one image of kind `key` as RGB (H, W, 3) or single-channel (H, W) uint8, exactly."""
    path = Path(path)
    data = np.fromfile(path, dtype=np.uint8)
    img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if img is None:
        raise SrnetFolderError(f"{path}: not a readable image")
    if img.dtype != np.uint8:
        raise SrnetFolderError(f"{path}: {img.dtype} image, expected 8-bit")
    channels = 1 if img.ndim == 2 else img.shape[2]
    if IMAGE_CHANNELS[key] == 1:
        if channels == 1:
            return img if img.ndim == 2 else img[:, :, 0].copy()
        if channels == 3 and np.array_equal(img[:, :, 0], img[:, :, 1]) and np.array_equal(img[:, :, 0], img[:, :, 2]):
            return img[:, :, 0].copy()
        raise SrnetFolderError(f"{path}: {key} must be greyscale, got {channels} distinct channel(s)")
    if channels == 1:
        grey = img if img.ndim == 2 else img[:, :, 0]
        return np.repeat(grey[:, :, None], 3, axis=2)
    if channels == 3:
        return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    raise SrnetFolderError(f"{path}: {key} must be RGB, got {channels} channels")


def write_srnet_folder(samples: Iterable[Sample], out_dir: str | os.PathLike[str], count: int | None = None) -> int:
    """Write samples in the layout above (names padded to fit `count`, default 3 digits); returns how many."""
    out = Path(out_dir)
    if (out / "i_s").is_dir() and any((out / "i_s").iterdir()):
        raise FileExistsError(f"{out / 'i_s'} already holds files; export into an empty folder")
    digits = max(3, len(str(max((count or 1) - 1, 0))))
    for key in IMAGE_KEYS:
        (out / key).mkdir(parents=True, exist_ok=True)
    labels: dict[str, list[str]] = {field: [] for field in LABEL_FILES}
    metas: list[str] = []
    n = 0
    for n, sample in enumerate(samples, start=1):
        name = f"{n - 1:0{digits}d}.png"
        for field in LABEL_FILES:
            text = str(sample.meta.get(field, ""))
            if "\n" in text or "\r" in text:
                raise SrnetFolderError(f"sample {sample.meta.get('id')!r}: {field} {text!r} contains a newline")
            labels[field].append(f"{name} {text}\n")
        for key in IMAGE_KEYS:
            _write_png(out / key / name, key, sample.images[key])
        metas.append(json.dumps({"name": name, "meta": sample.meta}, ensure_ascii=False, default=_json_default) + "\n")
    for field, file in LABEL_FILES.items():
        (out / file).write_text("".join(labels[field]), encoding="utf-8")
    (out / META_FILE).write_text("".join(metas), encoding="utf-8")
    return n


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def export_srnet(dataset_root: str | os.PathLike[str], out_dir: str | os.PathLike[str],
                 allow_partial: bool = False) -> int:
    """Export every sample of the textsynth dataset at `dataset_root` to an SRNet folder; returns the count."""
    from textsynth.shards.dataset import Dataset  # local import: the folder reader needs no Arrow

    dataset = Dataset(dataset_root, allow_partial=allow_partial)
    try:
        return write_srnet_folder(iter(dataset), out_dir, count=len(dataset))
    finally:
        dataset.close()


def _read_labels(src: Path) -> dict[str, dict[str, str]]:
    """file stem -> {"text_s", "text_t"} from i_s.txt / i_t.txt or labels.txt (names with or without suffix)."""
    labels: dict[str, dict[str, str]] = {}

    def put(name: str, field: str, text: str) -> None:
        labels.setdefault(_stem(name), {})[field] = text

    for field, file in LABEL_FILES.items():
        path = src / file
        if path.is_file():
            for line in path.read_text(encoding="utf-8").splitlines():
                if line.strip():
                    name, _, text = line.partition(" ")
                    put(name, field, text)
    combined = src / COMBINED_LABELS
    if combined.is_file():
        for number, line in enumerate(combined.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            parts = line.split()
            if len(parts) != 3:
                raise SrnetFolderError(f"{combined}:{number}: expected 'name text_s text_t', got {line!r}")
            put(parts[0], "text_s", parts[1])
            put(parts[0], "text_t", parts[2])
    return labels


def _stem(name: str) -> str:
    root, ext = os.path.splitext(name)
    return root if ext.lower() in IMAGE_SUFFIXES else name


def _read_metas(src: Path) -> dict[str, dict[str, Any]]:
    path = src / META_FILE
    if not path.is_file():
        return {}
    metas = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
            metas[entry["name"]] = dict(entry["meta"])
        except (ValueError, KeyError, TypeError) as exc:
            raise SrnetFolderError(f"{path}:{number}: malformed meta line: {exc}") from exc
    return metas


def import_srnet(src_dir: str | os.PathLike[str]) -> Iterator[Sample]:
    """Samples from an SRNet-Datagen style folder, in natural file-name order of i_s/.

    The folder structure is checked now (a file in i_s/ missing from another folder raises
    SrnetFolderError naming it); images are read lazily. Without mask_s/ the mask is zeros and
    meta["mask_s_missing"] is True; without labels texts are "" and meta["labels_missing"] is True.
    meta["id"] is the file stem unless meta.jsonl (written by export_srnet) provides the full meta.
    """
    src = Path(src_dir)
    if not (src / "i_s").is_dir():
        raise SrnetFolderError(f"{src}: no i_s/ folder; not an SRNet-Datagen style folder")
    names = sorted((p.name for p in (src / "i_s").iterdir()
                    if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES),
                   key=_natural_key)
    missing_dirs = [k for k in REQUIRED_KEYS if not (src / k).is_dir()]
    if missing_dirs:
        raise SrnetFolderError(f"{src}: missing folder(s) {', '.join(k + '/' for k in missing_dirs)}")
    has_mask_s = (src / "mask_s").is_dir()
    keys = IMAGE_KEYS if has_mask_s else REQUIRED_KEYS
    for name in names:
        for key in keys:
            if not (src / key / name).is_file():
                raise SrnetFolderError(f"{src / key / name}: missing (present as {src / 'i_s' / name})")
    labels = _read_labels(src)
    metas = _read_metas(src)
    return _iter_samples(src, names, keys, has_mask_s, labels, metas)


def _iter_samples(src: Path, names: list[str], keys: tuple[str, ...], has_mask_s: bool,
                  labels: dict[str, dict[str, str]], metas: dict[str, dict[str, Any]]) -> Iterator[Sample]:
    for name in names:
        images: dict[str, np.ndarray] = {}
        for key in keys:
            path = src / key / name
            img = read_image(path, key)
            if images and img.shape[:2] != images["i_s"].shape[:2]:
                raise SrnetFolderError(f"{path}: size {img.shape[:2]} differs from i_s {images['i_s'].shape[:2]}")
            images[key] = img
        if name in metas:
            meta = metas[name]
        else:
            text = labels.get(_stem(name), {})
            meta = {"id": _stem(name), "text_s": text.get("text_s", ""),
                    "text_t": text.get("text_t", ""), "source": "srnet_folder", "file": name}
            if not text:
                meta["labels_missing"] = True
        if not has_mask_s:
            images["mask_s"] = np.zeros(images["i_s"].shape[:2], dtype=np.uint8)
            meta["mask_s_missing"] = True
        yield Sample(images={k: images[k] for k in IMAGE_KEYS}, meta=meta)
