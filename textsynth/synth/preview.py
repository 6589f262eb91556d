"""Contact sheets: one row per image kind, one column per sample, labelled with both words."""
from __future__ import annotations

import io
from typing import Iterable

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..sample import IMAGE_KEYS, Sample

LABEL_W = 70
CAPTION_H = 34


def _label_font(fonts_pool=None, size: int = 13) -> ImageFont.ImageFont:
    """A font that can show Chinese captions: the bundle's CJK standard font when available."""
    if fonts_pool is not None and "han" in fonts_pool.standard:
        return ImageFont.truetype(io.BytesIO(fonts_pool.standard["han"].data), size)
    return ImageFont.load_default(size)


def contact_sheet(samples: Iterable[Sample], fonts_pool=None, cell_h: int = 64, max_cell_w: int = 320) -> Image.Image:
    samples = list(samples)
    if not samples:
        raise ValueError("contact_sheet needs at least one sample")
    font = _label_font(fonts_pool)
    cells = []
    for s in samples:
        scale = cell_h / s.height
        w = min(max_cell_w, max(1, round(s.width * scale)))
        cells.append((s, w))
    total_w = LABEL_W + sum(w + 6 for _, w in cells)
    total_h = CAPTION_H + len(IMAGE_KEYS) * (cell_h + 4)
    sheet = Image.new("RGB", (total_w, total_h), (30, 30, 30))
    draw = ImageDraw.Draw(sheet)
    for r, key in enumerate(IMAGE_KEYS):
        draw.text((6, CAPTION_H + r * (cell_h + 4) + cell_h // 2 - 7), key, font=font, fill=(230, 230, 230))
    x = LABEL_W
    for s, w in cells:
        caption = f"{s.meta.get('text_s', '?')} -> {s.meta.get('text_t', '?')}"
        chars = max(4, w // 7)  # keep captions inside their column
        draw.text((x, 2), caption[:chars], font=font, fill=(255, 220, 120))
        draw.text((x, 17), str(s.meta.get("font", ""))[:chars], font=font, fill=(160, 160, 160))
        for r, key in enumerate(IMAGE_KEYS):
            img = s.images[key]
            pil = Image.fromarray(img if img.ndim == 3 else np.repeat(img[..., None], 3, axis=2))
            sheet.paste(pil.resize((w, cell_h), Image.Resampling.BILINEAR), (x, CAPTION_H + r * (cell_h + 4)))
        x += w + 6
    return sheet
