"""The SRNet-Datagen folder layout (one PNG per image kind per sample): encode, read and scan it.

Layout written by `textsynth export --format srnet` (textsynth.folder_export) and read by `import`::

    out_dir/
      i_s/000.png  i_t/000.png  t_sk/000.png  t_t/000.png  t_b/000.png  t_f/000.png  mask_t/000.png  mask_s/000.png
      txt/000.txt  "<text_s> <text_t>" (MOSTEL reads the last word of its first line as the target text)
      i_s.txt      one line per sample: "<file name> <text_s>", e.g. "000.png hello"
      i_t.txt      one line per sample: "<file name> <text_t>" (the SRNet port's and MOSTEL's label file)
      text_s.txt   plain labels: one text_s per line, line k is the k-th file name (no name first)
      text_t.txt   plain labels: one text_t per line
      meta.jsonl   textsynth extension: {"name": "000.png", "meta": {...}} per line (full Sample.meta)

The same zero-padded file name is used in every folder. RGB images are 3-channel PNGs; t_sk, mask_t
and mask_s are 8-bit greyscale PNGs. SRNet-Datagen itself writes neither mask_s nor labels, so
import treats both as optional; when a label file is present it must label every sample exactly once.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

import cv2
import numpy as np

from textsynth.errors import SrnetFolderError
from textsynth.sample import IMAGE_CHANNELS, IMAGE_KEYS, Sample, json_default

REQUIRED_KEYS: tuple[str, ...] = tuple(k for k in IMAGE_KEYS if k != "mask_s")
LABEL_FILES: dict[str, str] = {"text_s": "i_s.txt", "text_t": "i_t.txt"}
PLAIN_LABEL_FILES: dict[str, str] = {"text_s": "text_s.txt", "text_t": "text_t.txt"}
COMBINED_LABELS = "labels.txt"  # also read: "<name> <text_s> <text_t>" per line
META_FILE = "meta.jsonl"
TXT_DIR = "txt"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
PNG_LEVEL = 3
try:  # a broken file is reported once, by our error naming it, not also by OpenCV's stderr log
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
except AttributeError:
    pass


def natural_key(name: str) -> list[Any]:
    """Sort key that orders '2.png' before '10.png'."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


_natural_key = natural_key  # older name, used by the profiler


def name_digits(count: int) -> int:
    """Zero-padding of sample names: at least 3 digits, enough for `count` samples."""
    return max(3, len(str(max(count - 1, 0))))


def encode_png(key: str, array: np.ndarray, where: str = "") -> bytes:
    """PNG bytes of one image of kind `key` (RGB in, stored as the usual BGR-ordered PNG)."""
    img = cv2.cvtColor(array, cv2.COLOR_RGB2BGR) if IMAGE_CHANNELS[key] == 3 else array
    ok, buf = cv2.imencode(".png", img, [cv2.IMWRITE_PNG_COMPRESSION, PNG_LEVEL])
    if not ok:
        raise SrnetFolderError(f"{where or key}: cv2 could not encode image {key!r} of shape {array.shape}")
    return buf.tobytes()


def decode_image(data: bytes | np.ndarray, key: str, where: str) -> np.ndarray:
    """Decode image bytes of kind `key` to RGB (H, W, 3) or single-channel (H, W) uint8, exactly."""
    buf = np.frombuffer(data, dtype=np.uint8) if isinstance(data, (bytes, bytearray, memoryview)) else data
    if buf.size == 0:
        raise SrnetFolderError(f"{where}: empty file (0 bytes), not an image")
    img = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    if img is None:
        raise SrnetFolderError(f"{where}: not a readable image (corrupt or truncated, {buf.size} bytes)")
    if img.dtype != np.uint8:
        raise SrnetFolderError(f"{where}: {img.dtype} image, expected 8-bit")
    channels = 1 if img.ndim == 2 else img.shape[2]
    if IMAGE_CHANNELS[key] == 1:
        if channels == 1:
            return img if img.ndim == 2 else img[:, :, 0].copy()
        if channels == 3 and np.array_equal(img[:, :, 0], img[:, :, 1]) and np.array_equal(img[:, :, 0], img[:, :, 2]):
            return img[:, :, 0].copy()
        raise SrnetFolderError(f"{where}: {key} must be greyscale, got {channels} distinct channel(s)")
    if channels == 1:
        grey = img if img.ndim == 2 else img[:, :, 0]
        return np.repeat(grey[:, :, None], 3, axis=2)
    if channels == 3:
        return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    raise SrnetFolderError(f"{where}: {key} must be RGB, got {channels} channels")


def read_image(path: str | os.PathLike[str], key: str) -> np.ndarray:
    """Read one image file of kind `key` (see decode_image); errors name the file."""
    path = Path(path)
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as exc:
        raise SrnetFolderError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    return decode_image(data, key, str(path))


def check_text(sample_id: Any, field_name: str, text: str) -> str:
    """A label must fit on one line of a label file."""
    if "\n" in text or "\r" in text:
        raise SrnetFolderError(f"sample {sample_id!r}: {field_name} {text!r} contains a newline")
    return text


def meta_line(name: str, meta: dict[str, Any]) -> str:
    """One meta.jsonl line."""
    return json.dumps({"name": name, "meta": meta}, ensure_ascii=False, default=json_default) + "\n"


def write_srnet_folder(samples: Iterable[Sample], out_dir: str | os.PathLike[str], count: int | None = None) -> int:
    """Write samples in the layout above into an empty folder, in this process; returns how many.

    The simple serial writer (the profiler uses it); `textsynth export` is the parallel, atomic one."""
    out = Path(out_dir)
    if out.is_dir() and any(out.iterdir()):
        raise FileExistsError(f"{out} already holds files; export into an empty folder")
    digits = name_digits(count or 1)
    for key in (*IMAGE_KEYS, TXT_DIR):
        (out / key).mkdir(parents=True, exist_ok=True)
    labels: dict[str, list[str]] = {f: [] for f in LABEL_FILES}
    metas: list[str] = []
    n = 0
    for n, sample in enumerate(samples, start=1):
        stem = f"{n - 1:0{digits}d}"
        name = stem + ".png"
        texts = {f: check_text(sample.meta.get("id"), f, str(sample.meta.get(f, ""))) for f in LABEL_FILES}
        for f in LABEL_FILES:
            labels[f].append(texts[f])
        for key in IMAGE_KEYS:
            (out / key / name).write_bytes(encode_png(key, sample.images[key], str(out / key / name)))
        (out / TXT_DIR / f"{stem}.txt").write_text(f"{texts['text_s']} {texts['text_t']}\n", encoding="utf-8")
        metas.append(meta_line(name, sample.meta))
    names = [f"{i:0{digits}d}.png" for i in range(n)]
    for f, file in LABEL_FILES.items():
        (out / file).write_text("".join(f"{nm} {t}\n" for nm, t in zip(names, labels[f])), encoding="utf-8")
        (out / PLAIN_LABEL_FILES[f]).write_text("".join(t + "\n" for t in labels[f]), encoding="utf-8")
    (out / META_FILE).write_text("".join(metas), encoding="utf-8")
    return n


class FolderTree:
    """Read access to a folder given as a local path or a URI (s3://bucket/prefix?...): list, read, test.

    The pyarrow filesystem of a URI is resolved lazily and not pickled, so the tree ships to workers."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = os.fspath(root)
        self.remote = "://" in self.root
        self._fs: Any = None
        self._base = "" if self.remote else os.path.abspath(self.root)

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_fs": None}

    def _resolve(self) -> Any:
        if self._fs is None:
            from textsynth.shards import storage

            self._fs, self._base = storage.locate(self.root)
        return self._fs

    def path(self, *parts: str) -> str:
        """Path of a file inside the tree as the filesystem sees it."""
        if self.remote:
            self._resolve()
            return "/".join([self._base.rstrip("/"), *parts])
        return os.path.join(self._base, *parts)

    def shown(self, *parts: str) -> str:
        """The path for messages (a URI without its query and credentials)."""
        if not self.remote:
            return self.path(*parts)
        scheme = self.root.split("://", 1)[0]
        return f"{scheme}://{self.path(*parts)}"

    def files(self, *parts: str) -> dict[str, int] | None:
        """name -> size of the files directly inside a sub-folder; None if it is not a folder."""
        if not self.remote:
            folder = self.path(*parts)
            if not os.path.isdir(folder):
                return None
            with os.scandir(folder) as it:
                return {e.name: e.stat().st_size for e in it if e.is_file()}
        import pyarrow.fs as pafs

        fs = self._resolve()
        info = fs.get_file_info(self.path(*parts))
        if info.type != pafs.FileType.Directory:
            return None
        return {i.base_name: i.size for i in fs.get_file_info(pafs.FileSelector(self.path(*parts)))
                if i.type == pafs.FileType.File}

    def is_dir(self, *parts: str) -> bool:
        return self.files(*parts) is not None

    def is_file(self, *parts: str) -> bool:
        if not self.remote:
            return os.path.isfile(self.path(*parts))
        import pyarrow.fs as pafs

        return self._resolve().get_file_info(self.path(*parts)).type == pafs.FileType.File

    def read(self, *parts: str) -> bytes:
        """Whole content of a file; SrnetFolderError naming it if unreadable."""
        try:
            if not self.remote:
                with open(self.path(*parts), "rb") as f:
                    return f.read()
            with self._resolve().open_input_stream(self.path(*parts)) as f:
                return f.read()
        except OSError as exc:
            raise SrnetFolderError(f"{self.shown(*parts)}: cannot read ({exc.strerror or exc})") from exc


# --- reading a folder -----------------------------------------------------------------------------

def _stem(name: str) -> str:
    root, ext = os.path.splitext(name)
    return root if ext.lower() in IMAGE_SUFFIXES else name


def _lines(tree: FolderTree, name: str) -> list[str]:
    try:
        text = tree.read(name).decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SrnetFolderError(f"{tree.shown(name)}: not UTF-8 (byte {exc.start})") from exc
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def _read_labels(src: FolderTree, names: list[str]) -> dict[str, dict[str, str]]:
    """file stem -> {"text_s", "text_t"}; a label file present must label every sample exactly once."""
    stems = [_stem(n) for n in names]
    wanted = set(stems)
    labels: dict[str, dict[str, str]] = {}
    sources: list[tuple[str, dict[str, list[tuple[int, str, str]]]]] = []
    for field_name, file in LABEL_FILES.items():
        if src.is_file(file):
            entries = []
            for number, line in enumerate(_lines(src, file), start=1):
                name, sep, text = line.partition(" ")
                if not name:
                    raise SrnetFolderError(f"{src.shown(file)}:{number}: expected '<file name> <text>', got {line!r}")
                entries.append((number, _stem(name), text))
            sources.append((src.shown(file), {field_name: entries}))
    if src.is_file(COMBINED_LABELS):
        s_entries, t_entries = [], []
        for number, line in enumerate(_lines(src, COMBINED_LABELS), start=1):
            parts = line.split()
            if len(parts) != 3:
                raise SrnetFolderError(f"{src.shown(COMBINED_LABELS)}:{number}: expected 'name text_s text_t', "
                                       f"got {line!r}")
            s_entries.append((number, _stem(parts[0]), parts[1]))
            t_entries.append((number, _stem(parts[0]), parts[2]))
        sources.append((src.shown(COMBINED_LABELS), {"text_s": s_entries, "text_t": t_entries}))
    for path, fields in sources:
        for field_name, entries in fields.items():
            seen: dict[str, int] = {}
            for number, stem, text in entries:
                if stem not in wanted:
                    raise SrnetFolderError(f"{path}:{number}: labels {stem!r}, which is not a sample of "
                                           f"{src.shown('i_s')}")
                if stem in seen:
                    raise SrnetFolderError(f"{path}:{number}: {stem!r} labelled twice (also line {seen[stem]})")
                seen[stem] = number
                labels.setdefault(stem, {})[field_name] = text
            if len(entries) != len(stems):
                unlabelled = [n for n, s in zip(names, stems) if s not in seen]
                shown = ", ".join(unlabelled[:5]) + (" ..." if len(unlabelled) > 5 else "")
                raise SrnetFolderError(f"{path}: {len(entries)} lines for {len(stems)} samples; "
                                       f"unlabelled: {shown}")
    return labels


def _read_metas(src: FolderTree) -> dict[str, dict[str, Any]]:
    if not src.is_file(META_FILE):
        return {}
    path = src.shown(META_FILE)
    metas = {}
    for number, line in enumerate(_lines(src, META_FILE), start=1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
            metas[entry["name"]] = dict(entry["meta"])
        except (ValueError, KeyError, TypeError) as exc:
            raise SrnetFolderError(f"{path}:{number}: malformed meta line: {exc}") from exc
    return metas


def _image_files(src: FolderTree, key: str) -> dict[str, int]:
    return {name: size for name, size in (src.files(key) or {}).items()
            if not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_SUFFIXES}


@dataclass
class SrnetFolder:
    """A scanned SRNet-Datagen folder: sample names (natural order), image kinds present, labels, metas."""

    root: FolderTree
    names: list[str]
    keys: tuple[str, ...]
    labels: dict[str, dict[str, str]] = field(default_factory=dict)
    metas: dict[str, dict[str, Any]] = field(default_factory=dict)
    has_labels: bool = False
    sizes: dict[str, int] = field(default_factory=dict)  # name -> bytes over all its image files

    @property
    def has_mask_s(self) -> bool:
        return "mask_s" in self.keys

    def read(self, name: str) -> Sample:
        """Sample `name`, its images decoded; errors name the file."""
        images: dict[str, np.ndarray] = {}
        for key in self.keys:
            path = self.root.shown(key, name)
            img = decode_image(self.root.read(key, name), key, path)
            if images and img.shape[:2] != images["i_s"].shape[:2]:
                raise SrnetFolderError(f"{path}: size {img.shape[:2]} differs from i_s {images['i_s'].shape[:2]}")
            images[key] = img
        if name in self.metas:
            meta = dict(self.metas[name])
        else:
            text = self.labels.get(_stem(name), {})
            meta = {"id": _stem(name), "text_s": text.get("text_s", ""),
                    "text_t": text.get("text_t", ""), "source": "srnet_folder", "file": name}
            if not self.has_labels:
                meta["labels_missing"] = True
        if not self.has_mask_s:
            images["mask_s"] = np.zeros(images["i_s"].shape[:2], dtype=np.uint8)
            meta["mask_s_missing"] = True
        return Sample(images={k: images[k] for k in IMAGE_KEYS}, meta=meta)


def scan_folder(src_dir: str | os.PathLike[str]) -> SrnetFolder:
    """Check a folder's structure without decoding images: every sample in every image folder,
    label files complete. SrnetFolderError names the first missing folder/file or bad label line."""
    src = FolderTree(src_dir)
    if not src.is_dir():
        raise SrnetFolderError(f"{src.shown()}: not a folder")
    if not src.is_dir("i_s"):
        raise SrnetFolderError(f"{src.shown()}: no i_s/ folder; not an SRNet-Datagen style folder")
    missing_dirs = [k for k in REQUIRED_KEYS if not src.is_dir(k)]
    if missing_dirs:
        raise SrnetFolderError(f"{src.shown()}: missing folder(s) {', '.join(k + '/' for k in missing_dirs)}")
    keys = IMAGE_KEYS if src.is_dir("mask_s") else REQUIRED_KEYS
    present = {k: _image_files(src, k) for k in keys}
    names = sorted(set().union(*present.values()), key=natural_key)
    for name in names:
        absent = [k for k in keys if name not in present[k]]
        if absent:
            there = next(k for k in keys if name in present[k])
            raise SrnetFolderError(f"{src.shown(absent[0], name)}: missing (sample present as {src.shown(there, name)}; "
                                   f"absent from {', '.join(k + '/' for k in absent)})")
    sizes = {name: sum(present[k][name] for k in keys) for name in names}
    metas = _read_metas(src)
    has_labels = any(src.is_file(f) for f in (*LABEL_FILES.values(), COMBINED_LABELS))
    labels = _read_labels(src, names) if has_labels else {}
    return SrnetFolder(src, names, keys, labels, metas, has_labels, sizes)


def import_srnet(src_dir: str | os.PathLike[str]) -> Iterator[Sample]:
    """Samples of an SRNet-Datagen style folder in natural name order; the structure is checked now
    (scan_folder), images are decoded lazily one sample at a time."""
    folder = scan_folder(src_dir)
    return (folder.read(name) for name in folder.names)
