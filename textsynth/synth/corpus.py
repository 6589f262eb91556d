"""Word sources: bundled English/Chinese lists, user text files, random strings, case variants."""
from __future__ import annotations

import unicodedata
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..assets import asset_root
from ..config import RANDOM_CHARSETS, CorpusConfig
from ..errors import CorpusError
from .fonts import is_han

BUNDLED = {"en": "en_words.txt", "zh": "zh_words.txt"}


def clean_line(line: str, where: str) -> str:
    """One corpus line NFC-normalised and stripped; a control character (C0, DEL, C1, or a stray
    BOM/ZWNBSP) is refused naming `where` (file:line), since it would be drawn as a missing glyph."""
    for ch in line:
        if unicodedata.category(ch) == "Cc" or ch == "\ufeff":
            raise CorpusError(f"{where}: control character U+{ord(ch):04X} in {line!r}")
    return unicodedata.normalize("NFC", line).strip()


def read_lines(path: Path, min_len: int, max_len: int, covered: frozenset[int] | None) -> list[str]:
    """Non-empty NFC lines within length limits (a leading BOM is dropped, control characters refused);
    lines with characters no font covers are dropped with one warning naming the file, the count and
    the characters."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise CorpusError(f"corpus file is not UTF-8: {path} (byte {e.start})") from e
    except OSError as e:
        raise CorpusError(f"cannot read corpus file {path}: {e.strerror or e}") from e
    items, dropped, missing = [], 0, set()
    for number, line in enumerate(text.split("\n"), start=1):  # not splitlines(): it splits at \x0c, \x85 ...
        item = clean_line(line[:-1] if line.endswith("\r") else line, f"{path}:{number}")
        if not item or not min_len <= len(item) <= max_len:
            continue
        if covered is not None:
            bad = {c for c in item if not c.isspace() and ord(c) not in covered}
            if bad:
                dropped += 1
                missing |= bad
                continue
        items.append(item)
    if dropped:
        shown = "".join(sorted(missing)[:20])
        warnings.warn(f"{path}: dropped {dropped} lines with characters no font covers: {shown!r}", stacklevel=2)
    if not items:
        raise CorpusError(f"corpus file {path} has no usable line (length {min_len}-{max_len}, covered by the fonts)")
    return items


@dataclass
class Corpus:
    """Word lists per language plus the rules that turn them into (source, target) pairs."""

    cfg: CorpusConfig
    words: dict[str, list[str]]

    @classmethod
    def from_config(cls, cfg: CorpusConfig, covered: frozenset[int] | None = None) -> "Corpus":
        words: dict[str, list[str]] = {}
        if cfg.files:
            items: list[str] = []
            for f in cfg.files:
                items += read_lines(Path(f), cfg.min_len, cfg.max_len, covered)
            for item in items:
                words.setdefault("zh" if any(is_han(c) for c in item) else "en", []).append(item)
        else:
            langs = ("en", "zh") if cfg.lang == "mixed" else (cfg.lang,)
            for lang in langs:
                words[lang] = read_lines(asset_root() / "corpora" / BUNDLED[lang], cfg.min_len, cfg.max_len, covered)
        if not words:
            raise CorpusError("the corpus is empty")
        return cls(cfg, words)

    def _lang(self, rng: np.random.Generator) -> str:
        langs = sorted(self.words)
        if len(langs) == 1:
            return langs[0]
        if self.cfg.lang == "mixed" and set(langs) == {"en", "zh"}:
            return "zh" if rng.random() < self.cfg.mixed_zh_fraction else "en"
        return langs[int(rng.integers(len(langs)))]

    def _word(self, rng: np.random.Generator, lang: str) -> str:
        cfg = self.cfg
        if lang == "en" and rng.random() < cfg.random_fraction:
            chars = RANDOM_CHARSETS[cfg.random_charset]
            n = int(rng.integers(cfg.min_len, min(cfg.max_len, 10) + 1))
            return "".join(chars[i] for i in rng.integers(len(chars), size=n))
        pool = self.words[lang]
        word = pool[int(rng.integers(len(pool)))]
        u = rng.random()
        if u < cfg.capitalize_p:
            word = word[:1].upper() + word[1:]
        elif u < cfg.capitalize_p + cfg.upper_p:
            word = word.upper()
        elif u < cfg.capitalize_p + cfg.upper_p + cfg.lower_p:
            word = word.lower()
        return word

    def pair(self, rng: np.random.Generator, max_tries: int = 50) -> tuple[str, str, str]:
        """(source, target, lang) drawn independently from one language; the target never equals the source."""
        lang = self._lang(rng)
        src = self._word(rng, lang)
        for _ in range(max_tries):
            tgt = self._word(rng, lang)
            if tgt != src:
                return src, tgt, lang
        raise CorpusError(f"corpus for {lang!r} cannot yield two different items (is it a single word?)")
