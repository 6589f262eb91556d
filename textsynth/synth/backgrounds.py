"""Background pool: indexed photos read lazily plus procedural textures, and the text-scale crop drawn per sample."""
from __future__ import annotations

import hashlib
import io
import warnings
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .bgindex import (IMAGE_SUFFIXES, MAX_PIXELS, Entry, Rejected, build_index,  # noqa: F401 - re-exported
                      read_entry_bytes, warn_rejected)
from ..config import BackgroundConfig
from ..errors import BackgroundError
from .draws import sometimes
from .textures import FAMILIES, make_texture

MAX_SIDE = 1024  # images are downscaled to this on load to bound worker memory


class UndecodableImage(BackgroundError):
    """An indexed file whose header looked fine but whose pixels do not decode (a truncated download):
    the sample draws again instead of stopping a long run."""


def load_image(path: Path, min_side: int) -> np.ndarray:
    """Decode an image file (see decode_image); BackgroundError names the file."""
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise BackgroundError(f"cannot read image {path}: {e.strerror or e}") from e
    return decode_image(data, path, min_side)


def decode_image(data: bytes, path: Path | str, min_side: int) -> np.ndarray:
    """Decode any common image to RGB uint8, EXIF-rotated, 16-bit scaled, long side <= MAX_SIDE."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            w, h = im.size
            if w * h > MAX_PIXELS:
                raise UndecodableImage(f"image too large ({w}x{h} > {MAX_PIXELS} px, possible decompression bomb): {path}")
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                im = ImageOps.exif_transpose(im)
                im.load()
            arr = _to_rgb(im)
    except (OSError, UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning,
            SyntaxError, ValueError) as e:
        raise UndecodableImage(f"cannot read image {path}: {e}") from e
    h, w = arr.shape[:2]
    if min(h, w) < min_side:
        raise UndecodableImage(f"image too small ({w}x{h}, min side {min_side}): {path}")
    scale = MAX_SIDE / max(h, w)
    if scale < 1:
        arr = cv2.resize(arr, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(arr)


def _to_rgb(im: Image.Image) -> np.ndarray:
    if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        a = np.asarray(im, dtype=np.float64)
        hi = 65535.0 if im.mode.startswith("I;16") or a.max() > 255 else 255.0
        g = np.clip(a / hi * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return np.repeat(g[..., None], 3, axis=2)
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return np.asarray(Image.alpha_composite(white, rgba).convert("RGB"))
    return np.asarray(im.convert("RGB"))


@dataclass
class Crop:
    """Where a photo background came from (computed at render time, recorded in the metadata)."""

    x: int
    y: int
    w: int
    h: int
    attempt: int  # which of the drawn placements was used
    busyness: float  # mean gradient magnitude (grey levels/px) under the text at output size
    busy: bool  # every drawn placement was busier than busy_max: the least busy one was kept
    clamped: bool  # the source was too small for the drawn text-scale ratio

    def to_dict(self) -> dict[str, Any]:
        return {"x": self.x, "y": self.y, "w": self.w, "h": self.h, "attempt": self.attempt,
                "busyness": round(self.busyness, 3), "busy": self.busy, "clamped": self.clamped}


class BackgroundPool:
    """An index of photos (decoded lazily, bounded LRU cache per process) plus procedural textures.

    Pickling carries the index only, so a pool of any size travels to workers as a small list."""

    def __init__(self, cfg: BackgroundConfig, entries: list[Entry], rejected: list[Rejected] | None = None):
        self.cfg = cfg
        self.entries = entries
        self.rejected = rejected or []
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._cache_bytes = 0
        self._textures: dict[int, np.ndarray] = {}

    @classmethod
    def from_config(cls, cfg: BackgroundConfig) -> "BackgroundPool":
        entries, rejected = build_index(cfg.bundled, cfg.extra, cfg.min_side)
        warn_rejected(rejected)
        if cfg.extra and not entries and not cfg.bundled and cfg.texture_p < 1.0:
            raise BackgroundError(f"no usable background image in {list(cfg.extra)}")
        return cls(cfg, entries, rejected)

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state.update(_textures={}, _cache=OrderedDict(), _cache_bytes=0)
        return state

    def content_hashes(self) -> list[tuple[str, str]]:
        """(name, sha256) of every indexed image, in index order: part of a dataset's fingerprint."""
        return [(e.name, e.sha256) for e in self.entries]

    def fingerprint(self) -> dict[str, Any]:
        digest = hashlib.sha256("\n".join(f"{n}\t{h}" for n, h in self.content_hashes()).encode()).hexdigest()
        return {"images": len(self.entries), "sha256": digest}

    def image(self, index: int) -> np.ndarray:
        """Decoded image `index` of the index, through the bounded LRU cache."""
        img = self._cache.get(index)
        if img is not None:
            self._cache.move_to_end(index)
            return img
        e = self.entries[index]
        img = decode_image(read_entry_bytes(e), e.path, self.cfg.min_side)
        self._cache[index] = img
        self._cache_bytes += img.nbytes
        while self._cache_bytes > self.cfg.cache_mb * 2**20 and len(self._cache) > 1:
            _, old = self._cache.popitem(last=False)
            self._cache_bytes -= old.nbytes
        return img

    def texture(self, index: int) -> np.ndarray:
        """Texture number `index` of the pool: a pure function of the index, so identical on every worker."""
        tex = self._textures.get(index)
        if tex is None:
            families = sorted(FAMILIES)
            rng = np.random.default_rng([0x7E47, index])
            tex = make_texture(families[index % len(families)], rng, self.cfg.texture_size)
            self._textures[index] = tex
        return tex

    def sample(self, rng: np.random.Generator) -> dict[str, Any]:
        """Draw a background's parameters (source, placements, jitter) as plain data, independent of output size."""
        cfg = self.cfg
        if not self.entries or rng.random() < cfg.texture_p:
            source: dict[str, Any] = {"kind": "texture", "index": int(rng.integers(cfg.texture_pool)),
                                      "scale": float(rng.uniform(*cfg.crop_scale)),
                                      "pos": [float(rng.random()), float(rng.random())]}
        else:
            i = int(rng.integers(len(self.entries)))
            n = cfg.placement_tries
            source = {"kind": "image", "name": self.entries[i].name, "index": i,
                      "ratio": [float(v) for v in rng.uniform(*cfg.text_scale, size=n)],
                      "pos": [[float(a), float(b)] for a, b in rng.random((n, 2))]}
        return {
            **source,
            "flip": bool(rng.random() < 0.5),
            "brightness": float(rng.uniform(*cfg.brightness)),
            "contrast": float(rng.uniform(*cfg.contrast)),
            "saturation": float(rng.uniform(*cfg.saturation)),
            "blur": sometimes(rng, cfg.blur_p, cfg.blur_sigma),
        }

    def apply(self, params: dict[str, Any], height: int, width: int, text_region: np.ndarray, text_h: float,
              fits: Callable[[np.ndarray], bool] = lambda img: True) -> tuple[np.ndarray, Crop | None]:
        """Render the drawn background at (height, width) as RGB uint8.

        Photos are cropped at text scale: crop height (source px) = ratio x text height (output px).
        Of the drawn placements the first whose gradient under `text_region` is at most busy_max and
        that `fits` (one text colour can reach the contrast floor on it) wins; else the best one,
        flagged busy."""
        if params["kind"] == "texture":
            src = self.texture(params["index"])
            src_h, src_w = src.shape[:2]
            aspect = width / height
            ch = max(1.0, params["scale"] * min(src_h, src_w / aspect))
            cw = min(float(src_w), ch * aspect)
            return self._finish(_crop_resize(src, params["pos"], ch, cw, height, width), params), None
        src = self.image(params["index"])
        src_h, src_w = src.shape[:2]
        aspect = width / height
        best = None
        for k, (ratio, pos) in enumerate(zip(params["ratio"], params["pos"])):
            ch = max(1.0, ratio * text_h)
            cw = ch * aspect
            fit = min(1.0, src_w / cw, src_h / ch)
            ch, cw = ch * fit, cw * fit
            raw = _crop_resize(src, pos, ch, cw, height, width)
            b = busyness(raw[:, ::-1] if params["flip"] else raw, text_region) * params["contrast"]
            x, y = int(pos[0] * (src_w - cw)), int(pos[1] * (src_h - ch))
            crop = Crop(x, y, max(1, round(cw)), max(1, round(ch)), k, b, False, fit < 1.0)
            if b <= self.cfg.busy_max:  # smooth enough: accept unless no text colour can fit it
                img = self._finish(raw, params)
                if fits(img):
                    return img, crop
                b += 1e6  # ranked after every placement that might fit
            if best is None or b < best[0]:
                best = (b, raw, crop)
        _, raw, crop = best
        crop.busy = True
        return self._finish(raw, params), crop

    @staticmethod
    def _finish(img: np.ndarray, params: dict[str, Any]) -> np.ndarray:
        if params["flip"]:
            img = img[:, ::-1]
        return jitter(img, params["brightness"], params["contrast"], params["saturation"], params["blur"])


def _crop_resize(src: np.ndarray, pos, ch: float, cw: float, height: int, width: int) -> np.ndarray:
    src_h, src_w = src.shape[:2]
    x1 = int(pos[0] * (src_w - cw))
    y1 = int(pos[1] * (src_h - ch))
    crop = src[y1:y1 + max(1, round(ch)), x1:x1 + max(1, round(cw))]
    interp = cv2.INTER_AREA if crop.shape[0] > height else cv2.INTER_LINEAR
    return cv2.resize(crop, (width, height), interpolation=interp)


def busyness(img: np.ndarray, region: np.ndarray) -> float:
    """Mean gradient magnitude (grey levels per px) of `img` over `region`: how busy the surface under
    the text is (SynthText places text on low-gradient regions)."""
    if region.any():  # only the text's bounding rows/columns are looked at
        ys, xs = np.nonzero(region.any(axis=1))[0], np.nonzero(region.any(axis=0))[0]
        sl = (slice(ys[0], ys[-1] + 1), slice(xs[0], xs[-1] + 1))
        img, region = img[sl], region[sl]
    else:
        region = np.ones(img.shape[:2], bool)
    g = cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_RGB2GRAY).astype(np.int16)
    m = np.abs(np.diff(g, axis=1, append=g[:, -1:])) + np.abs(np.diff(g, axis=0, append=g[-1:]))
    return float(m[region].mean())


_GREY = np.array([0.299, 0.587, 0.114])


def jitter(img: np.ndarray, brightness: float, contrast: float, saturation: float, blur: float) -> np.ndarray:
    """Brightness/contrast/saturation jitter (torchvision semantics, no clamping between the steps) and
    optional Gaussian blur. The grey weights sum to 1, so the three steps fold into one colour matrix:
    out = b*c*s*img + b*c*(1-s)*grey(img) + b*mean(grey)*(1-c), applied by cv2.transform in one pass."""
    b, c, s = brightness, contrast, saturation
    mean_grey = float(np.asarray(cv2.mean(img)[:3]) @ _GREY)
    m = np.zeros((3, 4))
    m[:, :3] = (b * c * (1.0 - s)) * _GREY[None, :] + (b * c * s) * np.eye(3)
    m[:, 3] = b * mean_grey * (1.0 - c)
    if blur <= 0:
        return cv2.transform(np.ascontiguousarray(img), m)  # uint8 out, rounded and saturated
    f = cv2.GaussianBlur(cv2.transform(img.astype(np.float32), m), (0, 0), blur)
    return np.clip(f + 0.5, 0, 255).astype(np.uint8)
