"""WCAG relative luminance and contrast ratio of sRGB colours (0..255)."""
from __future__ import annotations

import numpy as np

_LIN = ((np.arange(256) / 255.0 + 0.055) / 1.055) ** 2.4
_LIN[: 11] = np.arange(11) / 255.0 / 12.92  # sRGB linear segment (c <= 0.04045)
_W = np.array([0.2126, 0.7152, 0.0722])


def luminance(rgb: np.ndarray) -> np.ndarray | float:
    """WCAG relative luminance of sRGB colours given in 0..255 (last axis = RGB)."""
    c = np.asarray(rgb, np.float64) / 255.0
    lin = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    out = lin @ _W
    return float(out) if np.ndim(out) == 0 else out


def _ratio(l1: np.ndarray | float, l2: float) -> np.ndarray | float:
    """WCAG contrast ratio of two relative luminances."""
    return (np.maximum(l1, l2) + 0.05) / (np.minimum(l1, l2) + 0.05)


def contrast_ratio(a: np.ndarray, b: np.ndarray) -> np.ndarray | float:
    return _ratio(luminance(a), luminance(b))
