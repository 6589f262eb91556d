"""Font pool: font bytes plus cmap coverage computed once, so no word is drawn in a font lacking a glyph.

The pool pickles with the font bytes inside, so one copy reaches every Ray worker through the
object store; PIL font objects are rebuilt lazily per process and size.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import stat
import struct
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from fontTools.ttLib import TTFont, TTLibError
from PIL import ImageFont

from .. import atomic
from ..assets import asset_root, expand_paths
from ..config import FontConfig
from ..errors import CoverageError, FontError

FONT_SUFFIXES = (".ttf", ".otf", ".ttc", ".otc")
LATIN_REQUIRED = frozenset(map(ord, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"))
HAN_MIN_GLYPHS = 3000  # a font with fewer CJK ideographs is not offered for Chinese
MAX_OPEN_FONTS = 512  # (font, size) objects kept per process


def is_han(ch: str) -> bool:
    o = ord(ch)
    return 0x4E00 <= o <= 0x9FFF or 0x3400 <= o <= 0x4DBF or 0x3000 <= o <= 0x303F or 0xFF00 <= o <= 0xFFEF


@dataclass
class FontInfo:
    """One usable font: identity, bytes and the set of code points its cmap maps."""

    name: str  # file name, the id recorded in sample metadata
    family: str
    style: str
    data: bytes = field(repr=False)  # travels with the pool, so remote workers need no font files
    coverage: frozenset[int] = field(repr=False)
    scripts: tuple[str, ...] = ()
    license: str = ""

    @property
    def glyph_count(self) -> int:
        return len(self.coverage)

    def covers(self, text: str) -> bool:
        return self.coverage.issuperset(ord(c) for c in text if not c.isspace())


def read_font(path: Path, family: str = "", style: str = "", license: str = "") -> FontInfo:
    """Read a font file and its cmap; raise FontError naming the file if it is unusable."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise FontError(f"cannot read font {path}: {e.strerror or e}") from e
    try:
        tt = TTFont(io.BytesIO(data), fontNumber=0, lazy=True)
        cmap = tt.getBestCmap() or {}
        name = tt["name"].getBestFamilyName() if "name" in tt else None
    except (TTLibError, AssertionError, KeyError, ValueError, OSError, struct.error) as e:
        raise FontError(f"not a readable font: {path} ({type(e).__name__}: {e})") from e
    coverage = frozenset(cp for cp, glyph in cmap.items() if glyph != ".notdef")
    if not coverage:
        raise FontError(f"font has no mapped glyphs: {path}")
    try:  # FreeType must load it too, or rendering would fail later in a worker
        ImageFont.truetype(io.BytesIO(data), 20)
    except OSError as e:
        raise FontError(f"FreeType cannot load font {path}: {e}") from e
    scripts = []
    if LATIN_REQUIRED <= coverage:
        scripts.append("latin")
    if sum(1 for cp in coverage if 0x4E00 <= cp <= 0x9FFF) >= HAN_MIN_GLYPHS:
        scripts.append("han")
    return FontInfo(path.name, family or name or path.stem, style, data, coverage, tuple(scripts), license)


_FONT_FILES: dict[str, str] = {}  # content hash -> file, per process


def font_cache_dir() -> str:
    """Where font bytes are materialised: one folder per user (bounded by the number of distinct fonts),
    created 0700; an existing one must be a real folder owned by this user that no one else can write."""
    d = os.environ.get("TEXTSYNTH_FONT_CACHE") or os.path.join(tempfile.gettempdir(),
                                                                f"textsynth-fonts-{os.getuid()}")
    try:
        os.makedirs(d, mode=0o700, exist_ok=True)
        st = os.lstat(d)
    except OSError as e:
        raise FontError(f"font cache {d}: {e.strerror or e}") from None
    if not stat.S_ISDIR(st.st_mode):
        raise FontError(f"font cache {d} is not a folder (a symlink or file planted there?); remove it")
    if st.st_uid != os.getuid():
        raise FontError(f"font cache {d} belongs to uid {st.st_uid}, not to you (uid {os.getuid()}); "
                        "remove it or set TEXTSYNTH_FONT_CACHE to a private folder")
    if st.st_mode & 0o022:
        raise FontError(f"font cache {d} is writable by others (mode {stat.S_IMODE(st.st_mode):o}); "
                        "chmod 700 it or set TEXTSYNTH_FONT_CACHE to a private folder")
    return d


def _same_content(path: str, digest: str) -> bool:
    try:
        with open(path, "rb") as fh:
            return hashlib.file_digest(fh, "sha256").hexdigest() == digest
    except OSError:
        return False


def font_file(data: bytes, name: str) -> str:
    """A local file holding exactly these font bytes (checked by sha256 before first use), never rewritten
    in place.

    FreeType memory-maps font files, so each (font, size) object shares one copy of the bytes; a file
    truncated or rewritten under such a mapping would kill the process with SIGBUS, hence one
    immutable file per content, written to a temp name and renamed into place.
    """
    digest = hashlib.sha256(data).hexdigest()
    key = digest[:24]
    path = _FONT_FILES.get(key)
    if path is not None and os.path.exists(path):
        return path
    path = os.path.join(font_cache_dir(), f"{key}-{name}")
    if not _same_content(path, digest):  # missing, or planted/corrupt: write ours and rename over it
        atomic.write_bytes(path, data)
    _FONT_FILES[key] = path
    return path


class FontPool:
    """The fonts a recipe may draw from, with per-text candidate selection by cmap coverage."""

    def __init__(self, fonts: list[FontInfo], standard: dict[str, FontInfo]):
        if not fonts:
            raise FontError("the font pool is empty: no readable font files")
        self.fonts = fonts
        self.standard = standard
        self._pil: dict[tuple[int, int], ImageFont.FreeTypeFont] = {}
        self._std_pil: dict[tuple[str, int], ImageFont.FreeTypeFont] = {}
        self._files: dict[str, str] = {}
        self._union = frozenset().union(*(f.coverage for f in fonts))

    @classmethod
    def from_config(cls, cfg: FontConfig) -> "FontPool":
        fonts: list[FontInfo] = []
        standard: dict[str, FontInfo] = {}
        if cfg.bundled:
            root = asset_root() / "fonts"
            manifest = json.loads((root / "manifest.json").read_text(encoding="utf-8"))
            for entry in manifest["fonts"]:
                fonts.append(read_font(root / entry["file"], entry.get("family", ""), entry.get("style", ""),
                                       entry.get("license", "")))
            by_name = {f.name: f for f in fonts}
            for script, fname in manifest.get("standard", {}).items():
                standard[script] = by_name[fname]
        for path in expand_paths(cfg.extra, FONT_SUFFIXES):
            try:
                fonts.append(read_font(path, style="user"))
            except FontError as e:
                warnings.warn(f"skipping font: {e}", stacklevel=2)
        for script, override in (("latin", cfg.standard_latin), ("han", cfg.standard_han)):
            if override:
                standard[script] = read_font(Path(override), style="standard")
        return cls(fonts, standard)

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_pil"] = {}
        state["_std_pil"] = {}
        state["_files"] = {}
        return state

    def _file(self, info: FontInfo) -> str:
        path = self._files.get(info.name)
        if path is None:
            path = self._files[info.name] = font_file(info.data, info.name)
        return path

    def _open(self, cache: dict, key: tuple, info: FontInfo, size: int) -> ImageFont.FreeTypeFont:
        font = cache.get(key)
        if font is None:
            if len(cache) >= MAX_OPEN_FONTS:
                cache.pop(next(iter(cache)))
            font = ImageFont.truetype(self._file(info), size)
            cache[key] = font
        return font

    @property
    def coverage(self) -> frozenset[int]:
        """Every code point at least one font of the pool covers."""
        return self._union

    def uncovered(self, text: str) -> set[str]:
        return {c for c in text if not c.isspace() and ord(c) not in self._union}

    def candidates(self, text: str) -> list[int]:
        """Indices of fonts covering every character; pure-Latin text prefers non-CJK fonts."""
        idx = [i for i, f in enumerate(self.fonts) if f.covers(text)]
        if not any(is_han(c) for c in text):
            latin_only = [i for i in idx if "han" not in self.fonts[i].scripts]
            idx = latin_only or idx
        return idx

    def choose(self, rng: np.random.Generator, text: str) -> int:
        idx = self.candidates(text)
        if not idx:
            missing = "".join(sorted(self.uncovered(text))) or text
            raise CoverageError(f"no font in the pool covers all of {text!r} (missing: {missing!r})")
        return idx[int(rng.integers(len(idx)))]

    def pil(self, index: int, size: int) -> ImageFont.FreeTypeFont:
        return self._open(self._pil, (index, size), self.fonts[index], size)

    def standard_for(self, text: str) -> FontInfo:
        """The plain i_t font for a word: han if it has Chinese characters, else latin."""
        script = "han" if any(is_han(c) for c in text) else "latin"
        info = self.standard.get(script)
        if info is None or not info.covers(text):
            # fall back to any pool font covering the word, preferring the standard of the other script
            for f in list(self.standard.values()) + self.fonts:
                if f.covers(text):
                    return f
            raise CoverageError(f"no standard font covers {text!r}")
        return info

    def standard_pil(self, info: FontInfo, size: int) -> ImageFont.FreeTypeFont:
        return self._open(self._std_pil, (info.name, size), info, size)

    def describe(self) -> list[dict]:
        return [{"file": f.name, "family": f.family, "style": f.style, "glyphs": f.glyph_count,
                 "scripts": list(f.scripts)} for f in self.fonts]
