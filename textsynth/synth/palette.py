"""Text colour model: a drawn palette scheme with priors, resolved against the background under each glyph.

Schemes and what they draw (hue h, saturation s, value v; weights in `style.palette`):
- dark_on_light: dark, mostly neutral ink (s <= 0.6, v <= 0.35), wants the dark side;
- light_on_dark: near-white (s <= 0.25, v >= 0.85), wants the light side;
- signage: saturated sign colours (red, orange, yellow, green, blue +-0.02 hue, s >= 0.75, v >= 0.7),
  on whichever side the background leaves more room;
- related: the background's own hue +-0.15, any s <= 0.8 and v (tone-on-tone lettering);
- uniform (`style.color_uniform_p`): uniform RGB, the reference generator's model.
Resolution is deterministic: the drawn colour is mixed toward white (light side) or black (dark side)
just enough to reach `min_contrast` against the brightest/darkest background under any glyph (10th/90th
luminance percentile per glyph), else against the per-glyph means; when the wanted side cannot
reach the floor the other side is used; when neither can, the caller flattens the background.
"""
from __future__ import annotations

import colorsys
from dataclasses import asdict, dataclass

import numpy as np

from .local_contrast import GlyphBackground
from .colorspace import _LIN, _W, _ratio, luminance

SCHEMES = ("dark_on_light", "light_on_dark", "signage", "related")
SIGNAGE_HUES = (0.0, 0.08, 0.15, 0.35, 0.6)
_MIX = np.linspace(0.0, 1.0, 257)[:, None]


@dataclass
class ColorDraw:
    """The random part of a sample's colours (plain floats; resolved later against the background)."""

    scheme: str
    hsv: list[float]  # three uniforms in [0, 1), mapped into the scheme's ranges
    light_u: float  # breaks ties between light and dark text when the scheme allows both
    border_rgb: list[float]
    shadow_v: float
    min_contrast: float

    def to_dict(self) -> dict:
        return asdict(self)


def draw_colors(rng: np.random.Generator, weights: tuple[float, ...], uniform_p: float,
                min_contrast: float) -> ColorDraw:
    w = np.asarray(weights, np.float64)
    scheme = "uniform" if rng.random() < uniform_p else SCHEMES[int(rng.choice(len(SCHEMES), p=w / w.sum()))]
    return ColorDraw(scheme, [float(v) for v in rng.random(3)], float(rng.random()),
                     [float(v) for v in rng.random(3)], float(rng.uniform(0.0, 0.25)), float(min_contrast))


def base_color(d: ColorDraw, bg_mean: np.ndarray) -> tuple[np.ndarray, str]:
    """The scheme's colour before the contrast floor (0..255) and its side: 'light', 'dark' or 'either'."""
    a, b, c = d.hsv
    if d.scheme == "uniform":
        return np.array(d.hsv) * 255.0, "either"
    if d.scheme == "dark_on_light":
        hsv, side = (a, 0.6 * b, 0.35 * c), "dark"
    elif d.scheme == "light_on_dark":
        hsv, side = (a, 0.25 * b, 0.85 + 0.15 * c), "light"
    elif d.scheme == "signage":
        hue = SIGNAGE_HUES[min(int(a * len(SIGNAGE_HUES)), len(SIGNAGE_HUES) - 1)] + (a * len(SIGNAGE_HUES) % 1 - 0.5) * 0.04
        hsv, side = (hue % 1.0, 0.75 + 0.25 * b, 0.7 + 0.3 * c), "either"
    else:  # related to the background's hue
        h, _, _ = colorsys.rgb_to_hsv(*(np.asarray(bg_mean, np.float64) / 255.0))
        hsv, side = ((h + (a - 0.5) * 0.3) % 1.0, 0.8 * b, c), "either"
    return np.array(colorsys.hsv_to_rgb(*hsv)) * 255.0, side


def reach_contrast(color: np.ndarray, l_against: float, ratio: float, light: bool) -> np.ndarray:
    """Mix `color` toward white or black just enough to reach `ratio` against luminance `l_against`,
    rounded to integers that still hold the floor."""
    target = np.full(3, 255.0 if light else 0.0)
    cands = np.rint(color * (1 - _MIX) + target * _MIX).astype(np.intp)  # luminance is monotonic along
    lum = _LIN[cands] @ _W  # the mix: the first integer colour that holds the floor wins
    ok = np.nonzero((_ratio(lum, l_against) >= ratio) & ((lum > l_against) == light))[0]
    out = (cands[ok[0]] if len(ok) else target).astype(np.float64)
    while _ratio(luminance(out), l_against) < ratio and not (out == target).all():
        out = np.clip(out + (1 if light else -1), 0, 255)
    return out


def choose_side(side: str, room_light: float, room_dark: float, ratio: float, light_u: float) -> bool | None:
    ok_l, ok_d = room_light >= ratio, room_dark >= ratio
    if not (ok_l or ok_d):
        return None
    if ok_l and ok_d:
        if side == "either":
            return bool(light_u < np.log(room_light) / (np.log(room_light) + np.log(room_dark)))
        return side == "light"
    return ok_l


def resolve_text(d: ColorDraw, gb: GlyphBackground) -> tuple[np.ndarray, bool] | None:
    """Text colour meeting the floor against every glyph's background, or None when no colour can."""
    ratio = d.min_contrast
    base, side = base_color(d, gb.mean_rgb.mean(axis=0))
    lo_m, hi_m = float(gb.lum_mean.min()), float(gb.lum_mean.max())
    extremes = (min(float(gb.lum_lo.min()), lo_m), max(float(gb.lum_hi.max()), hi_m))
    for lo, hi in (extremes, (lo_m, hi_m)):
        light = choose_side(side, 1.05 / (hi + 0.05), (lo + 0.05) / 0.05, ratio, d.light_u)
        if light is not None:
            return reach_contrast(base, hi if light else lo, ratio, light), light
    return None


def resolve_colors(d: ColorDraw, gb: GlyphBackground, has_border: bool) -> dict[str, list[int]] | None:
    """Final text, border and shadow colours (0..255 ints), or None when the background under the
    glyphs spans too much for any one colour (the caller flattens it and asks again)."""
    got = resolve_text(d, gb)
    if got is None:
        return None
    text, _ = got
    out = {"text": [int(v) for v in text]}
    if has_border:
        l_text = luminance(text)
        room_l, room_d = 1.05 / (l_text + 0.05), (l_text + 0.05) / 0.05
        light = room_l >= room_d if max(room_l, room_d) < d.min_contrast else choose_side(
            "either", room_l, room_d, d.min_contrast, 1.0 - d.light_u)
        border = reach_contrast(np.array(d.border_rgb) * 255.0, l_text, d.min_contrast, bool(light))
        out["border"] = [int(v) for v in border]
    out["shadow"] = [int(round(v)) for v in gb.mean_rgb.mean(axis=0) * d.shadow_v]
    return out
