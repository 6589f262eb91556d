"""Which text needs complex shaping (joining, reordering, marks), so it must never be drawn glyph by glyph.

Detected per character from Unicode data: right-to-left bidi classes (Arabic, Hebrew, Syriac, Thaana,
NKo...), combining marks (Indic vowel signs, Thai/Lao marks, Hebrew points, Latin combining accents
that NFC could not fold) and the blocks of scripts whose letters change form or order in context.
"""
from __future__ import annotations

import functools
import unicodedata

# Blocks of scripts that reorder or join even without marks (start, end inclusive)
_COMPLEX_BLOCKS = (
    (0x0590, 0x08FF),  # Hebrew, Arabic, Syriac, Arabic Supplement, Thaana, NKo, Samaritan, Mandaic, Arabic Ext
    (0x0900, 0x0DFF),  # Devanagari .. Sinhala (Indic)
    (0x0E00, 0x0FFF),  # Thai, Lao, Tibetan
    (0x1000, 0x109F),  # Myanmar
    (0x1780, 0x18AF),  # Khmer, Mongolian
    (0x1A00, 0x1CFF),  # Buginese .. Vedic extensions
    (0xA800, 0xABFF),  # Syloti Nagri .. Meetei Mayek
    (0xFB1D, 0xFDFF),  # Hebrew and Arabic presentation forms A
    (0xFE70, 0xFEFF),  # Arabic presentation forms B
)


@functools.lru_cache(maxsize=1 << 14)
def _char_needs_shaping(ch: str) -> bool:
    cp = ord(ch)
    if any(lo <= cp <= hi for lo, hi in _COMPLEX_BLOCKS):
        return True
    return unicodedata.bidirectional(ch) in ("R", "AL") or unicodedata.category(ch) in ("Mn", "Mc", "Me")


def needs_shaping(text: str) -> bool:
    """True if drawing `text` one character at a time would break joining, order or mark placement."""
    return any(_char_needs_shaping(c) for c in text)
