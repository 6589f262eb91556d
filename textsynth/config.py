"""Typed synthesis config: dataclasses with defaults, loaded from TOML/JSON/dicts and validated.

Every probability and range of the sample recipe lives here. Defaults cover the reference
generator's effects and ranges (docs/ARCHITECTURE.md, "The reference generator"); lengths are in em (fractions of the font size) so a
recipe means the same thing at any output height.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .checks import check_prob as _check_prob, check_range as _check_range
from .errors import ConfigError
from .synth.effects import EffectsConfig
from .typedconfig import TypedConfig

Range = tuple[float, float]


@dataclass(frozen=True)
class FontConfig(TypedConfig):
    """Font pool and size. `size` is the nominal font size in px (used as-is in native mode)."""

    SECTION = "config.fonts"

    bundled: bool = True
    extra: tuple[str, ...] = ()  # extra font files or folders
    size: Range = (25.0, 60.0)
    standard_latin: str = ""  # i_t font; "" = the bundle's standard latin font
    standard_han: str = ""

    def check(self, path: str) -> None:
        _check_range(self.size, f"{path}.size", lo=4.0, hi=512.0)


@dataclass(frozen=True)
class CorpusConfig(TypedConfig):
    """Where words come from and how they are varied."""

    SECTION = "config.corpus"

    lang: str = "en"  # en | zh | mixed
    mixed_zh_fraction: float = 0.5  # with lang=mixed, share of Chinese pairs
    files: tuple[str, ...] = ()  # extra UTF-8 text files, one item per line (replace bundled ones)
    random_fraction: float = 0.1  # share of random strings instead of corpus words
    random_charset: str = "letters_digits_punct"  # letters | digits | letters_digits | letters_digits_punct
    min_len: int = 1
    max_len: int = 12
    capitalize_p: float = 0.10
    upper_p: float = 0.04
    lower_p: float = 0.0

    def check(self, path: str) -> None:
        if self.lang not in ("en", "zh", "mixed"):
            raise ConfigError(f"{path}.lang must be en, zh or mixed, got {self.lang!r}")
        if self.random_charset not in RANDOM_CHARSETS:
            raise ConfigError(
                f"{path}.random_charset must be one of {sorted(RANDOM_CHARSETS)}, got {self.random_charset!r}")
        for name in ("mixed_zh_fraction", "random_fraction", "capitalize_p", "upper_p", "lower_p"):
            _check_prob(getattr(self, name), f"{path}.{name}")
        if self.min_len < 1:
            raise ConfigError(f"{path}.min_len must be >= 1, got {self.min_len}")
        if self.max_len < self.min_len:
            raise ConfigError(f"{path}.max_len ({self.max_len}) must be >= min_len ({self.min_len})")


RANDOM_CHARSETS = {
    "letters": "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ",
    "digits": "0123456789",
    "letters_digits": "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789",
    "letters_digits_punct": "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,:;!?-'&$%#@()/",
}


@dataclass(frozen=True)
class BackgroundConfig(TypedConfig):
    """Background pool: bundled photos, user sources and procedural textures, plus crop and jitter."""

    SECTION = "config.background"

    bundled: bool = True
    extra: tuple[str, ...] = ()  # image files, folders, globs, list files (.txt/.lst) or s3://... prefixes
    texture_p: float = 0.15  # share of procedural textures (when images exist); photos are the default
    texture_pool: int = 24  # procedural textures generated per process (deterministic per index)
    texture_size: int = 384
    min_side: int = 32  # smaller images are rejected
    cache_mb: int = 256  # decoded photos kept per worker process (LRU), whatever the pool size
    text_scale: Range = (1.2, 4.0)  # photo crop height (source px) / rendered text height (output px)
    placement_tries: int = 3  # drawn crop placements; the first smooth enough under the text wins
    busy_max: float = 15.0  # mean gradient (grey levels/px) under the text above which a placement is busy
    crop_scale: Range = (0.3, 1.0)  # texture crop side as a fraction of the texture's side (before resize)
    brightness: Range = (0.7, 1.3)
    contrast: Range = (0.7, 1.3)
    saturation: Range = (0.7, 1.3)
    blur_p: float = 0.1
    blur_sigma: Range = (0.5, 1.5)

    def check(self, path: str) -> None:
        _check_prob(self.texture_p, f"{path}.texture_p")
        _check_prob(self.blur_p, f"{path}.blur_p")
        if self.texture_pool < 1:
            raise ConfigError(f"{path}.texture_pool must be >= 1, got {self.texture_pool}")
        if self.texture_size < 64:
            raise ConfigError(f"{path}.texture_size must be >= 64, got {self.texture_size}")
        if self.min_side < 8:
            raise ConfigError(f"{path}.min_side must be >= 8, got {self.min_side}")
        if self.cache_mb < 1:
            raise ConfigError(f"{path}.cache_mb must be >= 1, got {self.cache_mb}")
        if not 1 <= self.placement_tries <= 64:
            raise ConfigError(f"{path}.placement_tries must be in [1, 64], got {self.placement_tries}")
        if self.busy_max < 0:
            raise ConfigError(f"{path}.busy_max must be >= 0, got {self.busy_max}")
        _check_range(self.text_scale, f"{path}.text_scale", lo=0.1, hi=100.0)
        _check_range(self.crop_scale, f"{path}.crop_scale", lo=0.01, hi=1.0)
        for name in ("brightness", "contrast", "saturation"):
            _check_range(getattr(self, name), f"{path}.{name}", lo=0.0, hi=10.0)
        _check_range(self.blur_sigma, f"{path}.blur_sigma", lo=0.0, hi=20.0)


@dataclass(frozen=True)
class StyleConfig(TypedConfig):
    """Probabilities and ranges of one style draw, shared by the source and target words."""

    SECTION = "config.style"

    tracking_p: float = 0.15
    tracking: Range = (0.0, 0.25)  # extra letter spacing, em
    strong_p: float = 0.05  # synthetic bold: glyphs dilated before the warp
    strong: Range = (0.02, 0.045)  # em
    oblique_p: float = 0.02
    oblique_deg: Range = (8.0, 15.0)
    underline_p: float = 0.01
    underline_thickness: Range = (0.04, 0.08)  # em
    curve_p: float = 0.05
    curve: Range = (0.15, 0.5)  # arc sagitta, em (sign drawn separately)
    rotation_std_deg: float = 1.0
    rotation_max_deg: float = 10.0
    shear_std_deg: float = 2.0
    stretch_std: float = 0.1  # horizontal zoom N(1, std)
    perspective_p: float = 1.0
    perspective_std: float = 0.03  # homography h31/h32 in units of the text box
    border_p: float = 0.02
    border: Range = (0.03, 0.10)  # em
    shadow_p: float = 0.02
    shadow_offset: Range = (0.03, 0.10)  # em
    shadow_blur: Range = (0.0, 0.06)  # em (Gaussian sigma)
    shadow_opacity: Range = (0.5, 0.9)
    padding: Range = (0.08, 0.3)  # canvas padding around the text, em
    color_uniform_p: float = 0.0  # uniform random RGB (the reference's model) instead of the palette
    # palette scheme weights: dark_on_light, light_on_dark, signage, related (textsynth/palette.py)
    palette: tuple[float, float, float, float] = (0.4, 0.25, 0.2, 0.15)
    min_contrast: float = 3.0  # WCAG contrast ratio floor between text and local background
    blur_p: float = 0.05  # camera blur applied alike to i_s, t_b and t_f
    blur_sigma: Range = (0.3, 1.0)  # px at output resolution
    noise_p: float = 0.05
    noise_std: Range = (2.0, 8.0)  # grey levels

    def check(self, path: str) -> None:
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if f.name.endswith("_p"):
                _check_prob(v, f"{path}.{f.name}")
            elif isinstance(v, tuple) and f.name != "palette":
                _check_range(v, f"{path}.{f.name}", lo=0.0, hi=100.0)
        for name in ("rotation_std_deg", "rotation_max_deg", "shear_std_deg", "stretch_std", "perspective_std"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{path}.{name} must be >= 0, got {getattr(self, name)}")
        if self.stretch_std > 0.5:
            raise ConfigError(f"{path}.stretch_std must be <= 0.5, got {self.stretch_std}")
        if self.perspective_std > 0.2:
            raise ConfigError(f"{path}.perspective_std must be <= 0.2, got {self.perspective_std}")
        if any(v < 0 for v in self.palette) or sum(self.palette) <= 0:
            raise ConfigError(f"{path}.palette weights must be >= 0 with a positive sum, got {list(self.palette)}")
        if not 1.0 <= self.min_contrast <= 15.0:
            raise ConfigError(f"{path}.min_contrast must be in [1, 15], got {self.min_contrast}")
        if self.shadow_opacity[1] > 1.0:
            raise ConfigError(f"{path}.shadow_opacity must lie in [0, 1], got {self.shadow_opacity}")


@dataclass(frozen=True)
class RenderConfig(TypedConfig):
    """Output geometry. height=0 keeps the native rendered size."""

    SECTION = "config.render"

    height: int = 64
    width_multiple: int = 8  # fixed-height widths are padded up to a multiple of this (SRNet needs 8)
    max_width: int = 1024
    max_attempts: int = 20  # bounded redraws of a sample before RenderError

    def check(self, path: str) -> None:
        if self.height != 0 and not 16 <= self.height <= 1024:
            raise ConfigError(f"{path}.height must be 0 (native) or in [16, 1024], got {self.height}")
        if not 1 <= self.width_multiple <= 64:
            raise ConfigError(f"{path}.width_multiple must be in [1, 64], got {self.width_multiple}")
        if self.max_width < 32:
            raise ConfigError(f"{path}.max_width must be >= 32, got {self.max_width}")
        if self.max_attempts < 1:
            raise ConfigError(f"{path}.max_attempts must be >= 1, got {self.max_attempts}")


@dataclass(frozen=True)
class SynthConfig(TypedConfig):
    """The whole recipe. `seed` is the dataset seed; sample i uses rng(seed, i)."""

    seed: int = 0
    fonts: FontConfig = field(default_factory=FontConfig)
    corpus: CorpusConfig = field(default_factory=CorpusConfig)
    background: BackgroundConfig = field(default_factory=BackgroundConfig)
    style: StyleConfig = field(default_factory=StyleConfig)
    render: RenderConfig = field(default_factory=RenderConfig)
    effects: EffectsConfig = field(default_factory=EffectsConfig)

    def check(self, path: str) -> None:
        if self.seed < 0:
            raise ConfigError(f"{path}.seed must be >= 0, got {self.seed}")


def from_dict(data: dict[str, Any]) -> SynthConfig:
    """Build and check a SynthConfig from a nested dict (missing keys take defaults)."""
    return SynthConfig.from_dict(data)


def load(path: str | Path) -> SynthConfig:
    """Load a recipe from a .toml or .json file; errors name the file and the bad key."""
    return SynthConfig.load(path)
