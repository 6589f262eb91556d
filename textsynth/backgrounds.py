"""Background pool: normalised photos plus procedural textures, and the jittered crop drawn per sample."""
from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .assets import asset_root, expand_paths
from .config import BackgroundConfig
from .errors import BackgroundError
from .textures import FAMILIES, make_texture

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif")
MAX_PIXELS = 50_000_000  # larger images are refused unread (decompression-bomb guard)
MAX_SIDE = 1024  # images are downscaled to this on load to bound worker memory


def load_image(path: Path, min_side: int) -> np.ndarray:
    """Decode any common image to RGB uint8, EXIF-rotated, 16-bit scaled; BackgroundError names the file."""
    try:
        with Image.open(path) as im:
            w, h = im.size
            if w * h > MAX_PIXELS:
                raise BackgroundError(f"image too large ({w}x{h} > {MAX_PIXELS} px, possible decompression bomb): {path}")
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                im = ImageOps.exif_transpose(im)
                im.load()
            arr = _to_rgb(im)
    except (OSError, UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning,
            SyntaxError, ValueError) as e:
        raise BackgroundError(f"cannot read image {path}: {e}") from e
    h, w = arr.shape[:2]
    if min(h, w) < min_side:
        raise BackgroundError(f"image too small ({w}x{h}, min side {min_side}): {path}")
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
class BackgroundPool:
    """Photos held in memory and a deterministic set of procedural textures (built lazily per index)."""

    cfg: BackgroundConfig
    images: list[tuple[str, np.ndarray]]
    _textures: dict[int, np.ndarray] = field(default_factory=dict, repr=False)

    @classmethod
    def from_config(cls, cfg: BackgroundConfig) -> "BackgroundPool":
        paths: list[Path] = []
        if cfg.bundled:
            root = asset_root() / "backgrounds"
            manifest = json.loads((root / "manifest.json").read_text(encoding="utf-8"))
            paths += [root / e["file"] for e in manifest["images"]]
        paths += expand_paths(cfg.extra, IMAGE_SUFFIXES)
        images = []
        for p in paths:
            try:
                images.append((p.name, load_image(p, cfg.min_side)))
            except BackgroundError as e:
                warnings.warn(f"skipping background: {e}", stacklevel=2)
        if cfg.extra and not images and not cfg.bundled and cfg.texture_p < 1.0:
            raise BackgroundError(f"no usable background image in {list(cfg.extra)}")
        return cls(cfg, images)

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_textures"] = {}
        return state

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
        """Draw a background's parameters (source, crop, jitter) as plain data, independent of output size."""
        cfg = self.cfg
        if not self.images or rng.random() < cfg.texture_p:
            source: dict[str, Any] = {"kind": "texture", "index": int(rng.integers(cfg.texture_pool))}
        else:
            i = int(rng.integers(len(self.images)))
            source = {"kind": "image", "name": self.images[i][0], "index": i}
        return {
            **source,
            "scale": float(rng.uniform(*cfg.crop_scale)),
            "pos": [float(rng.random()), float(rng.random())],
            "flip": bool(rng.random() < 0.5),
            "brightness": float(rng.uniform(*cfg.brightness)),
            "contrast": float(rng.uniform(*cfg.contrast)),
            "saturation": float(rng.uniform(*cfg.saturation)),
            "blur": float(rng.uniform(*cfg.blur_sigma)) if rng.random() < cfg.blur_p else 0.0,
        }

    def apply(self, params: dict[str, Any], height: int, width: int) -> np.ndarray:
        """Render the drawn background at (height, width) as RGB uint8."""
        if params["kind"] == "texture":
            src = self.texture(params["index"])
        else:
            src = self.images[params["index"]][1]
        # crop with the output's aspect ratio; its side relative to the source's short side
        src_h, src_w = src.shape[:2]
        aspect = width / height
        ch = max(1.0, params["scale"] * min(src_h, src_w / aspect))
        cw = min(float(src_w), ch * aspect)
        x1 = int(params["pos"][0] * (src_w - cw))
        y1 = int(params["pos"][1] * (src_h - ch))
        crop = src[y1:y1 + max(1, round(ch)), x1:x1 + max(1, round(cw))]
        interp = cv2.INTER_AREA if crop.shape[0] > height else cv2.INTER_LINEAR
        img = cv2.resize(crop, (width, height), interpolation=interp)
        if params["flip"]:
            img = img[:, ::-1]
        return jitter(img, params["brightness"], params["contrast"], params["saturation"], params["blur"])


def jitter(img: np.ndarray, brightness: float, contrast: float, saturation: float, blur: float) -> np.ndarray:
    """Brightness/contrast/saturation jitter (torchvision semantics) and optional Gaussian blur."""
    f = img.astype(np.float32)
    f *= brightness
    grey = f @ np.array([0.299, 0.587, 0.114], np.float32)
    f = (f - grey.mean()) * contrast + grey.mean()
    grey = f @ np.array([0.299, 0.587, 0.114], np.float32)
    f = grey[..., None] + (f - grey[..., None]) * saturation
    if blur > 0:
        f = cv2.GaussianBlur(f, (0, 0), blur)
    return np.clip(f + 0.5, 0, 255).astype(np.uint8)
