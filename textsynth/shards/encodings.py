"""Image codecs by name ("raw", "lz4", "png", "jpeg"): arrays are RGB (H, W, 3) or (H, W) uint8 in and out.

raw/lz4 store the array bytes (decode needs H, W; channels come from IMAGE_CHANNELS); png/jpeg are
self-describing. In "jpeg" mode the single-channel images stay PNG because they must stay exact.
"""
from __future__ import annotations

from typing import Callable, Union

import cv2
import lz4.frame
import numpy as np

from textsynth.errors import CorruptShardError
from textsynth.sample import IMAGE_CHANNELS

ENCODINGS: tuple[str, ...] = ("raw", "lz4", "png", "jpeg")
DEFAULT_ENCODING = "lz4"
PNG_LEVEL = 1
JPEG_QUALITY = 95
LZ4_LEVEL = lz4.frame.COMPRESSIONLEVEL_MIN  # the fast level; content checksum catches bit flips

Buffer = Union[bytes, bytearray, memoryview, np.ndarray]


def check_encoding(encoding: str) -> str:
    """Return `encoding` if it is a known dataset encoding, else raise ValueError naming it."""
    if encoding not in ENCODINGS:
        raise ValueError(f"unknown image encoding {encoding!r}; expected one of {', '.join(ENCODINGS)}")
    return encoding


def _check_key(key: str) -> int:
    if key not in IMAGE_CHANNELS:
        raise ValueError(f"unknown image key {key!r}; expected one of {', '.join(IMAGE_CHANNELS)}")
    return IMAGE_CHANNELS[key]


def image_encoding(encoding: str, key: str) -> str:
    """The codec actually used for image `key` in a dataset encoded as `encoding` (jpeg keeps masks PNG)."""
    check_encoding(encoding)
    channels = _check_key(key)
    return "png" if encoding == "jpeg" and channels == 1 else encoding


def _expected_shape(key: str, height: int, width: int) -> tuple[int, ...]:
    channels = _check_key(key)
    return (height, width, 3) if channels == 3 else (height, width)


def _check_array(key: str, array: np.ndarray) -> np.ndarray:
    channels = _check_key(key)
    if not isinstance(array, np.ndarray) or array.dtype != np.uint8:
        raise ValueError(f"image {key!r} must be a uint8 numpy array, got {getattr(array, 'dtype', type(array))}")
    ok = array.ndim == 3 and array.shape[2] == 3 if channels == 3 else array.ndim == 2
    if not ok:
        raise ValueError(f"image {key!r} must have {channels} channel(s), got shape {array.shape}")
    return np.ascontiguousarray(array)


def _as_u8(data: Buffer) -> np.ndarray:
    return data if isinstance(data, np.ndarray) else np.frombuffer(data, dtype=np.uint8)


# --- raw ---------------------------------------------------------------------------------------

def _encode_raw(key: str, array: np.ndarray) -> bytes:
    return array.tobytes()


def _from_raw(key: str, flat: Buffer, height: int, width: int, what: str) -> np.ndarray:
    shape = _expected_shape(key, height, width)
    flat_u8 = _as_u8(flat)
    expected = int(np.prod(shape))
    if flat_u8.size != expected:
        raise CorruptShardError(
            f"{what} payload of image {key!r} has {flat_u8.size} bytes, expected {expected} for shape {shape}")
    return flat_u8.reshape(shape)


def _decode_raw(key: str, data: Buffer, height: int, width: int) -> np.ndarray:
    # Copy so the result is writable and does not pin a memory-mapped shard.
    return _from_raw(key, data, height, width, "raw").copy()


# --- lz4 ---------------------------------------------------------------------------------------

def _encode_lz4(key: str, array: np.ndarray) -> bytes:
    return lz4.frame.compress(array, compression_level=LZ4_LEVEL, content_checksum=True)


def _decode_lz4(key: str, data: Buffer, height: int, width: int) -> np.ndarray:
    try:
        raw = lz4.frame.decompress(data)
    except RuntimeError as exc:  # python-lz4 reports every frame error as RuntimeError
        raise CorruptShardError(f"lz4 payload of image {key!r} does not decompress: {exc}") from exc
    return _from_raw(key, raw, height, width, "lz4")


# --- png / jpeg (cv2 is BGR: convert at the boundary) --------------------------------------------

def _to_cv(array: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(array, cv2.COLOR_RGB2BGR) if array.ndim == 3 else array


def _imencode(ext: str, key: str, array: np.ndarray, params: list[int]) -> bytes:
    ok, buf = cv2.imencode(ext, _to_cv(array), params)
    if not ok:
        raise ValueError(f"cv2 could not encode image {key!r} of shape {array.shape} as {ext}")
    return buf.tobytes()


def _encode_png(key: str, array: np.ndarray) -> bytes:
    return _imencode(".png", key, array, [cv2.IMWRITE_PNG_COMPRESSION, PNG_LEVEL])


def _encode_jpeg(key: str, array: np.ndarray) -> bytes:
    return _imencode(".jpg", key, array, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])


def _imdecode(fmt: str, key: str, data: Buffer, height: int, width: int) -> np.ndarray:
    shape = _expected_shape(key, height, width)
    flag = cv2.IMREAD_COLOR if len(shape) == 3 else cv2.IMREAD_GRAYSCALE
    img = cv2.imdecode(_as_u8(data), flag)
    if img is None:
        raise CorruptShardError(f"{fmt} payload of image {key!r} does not decode")
    if img.shape != shape or img.dtype != np.uint8:
        raise CorruptShardError(f"{fmt} payload of image {key!r} decodes to {img.shape}, expected {shape}")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB) if img.ndim == 3 else img


def _decode_png(key: str, data: Buffer, height: int, width: int) -> np.ndarray:
    return _imdecode("png", key, data, height, width)


def _decode_jpeg(key: str, data: Buffer, height: int, width: int) -> np.ndarray:
    return _imdecode("jpeg", key, data, height, width)


_ENCODERS: dict[str, Callable[[str, np.ndarray], bytes]] = {
    "raw": _encode_raw, "lz4": _encode_lz4, "png": _encode_png, "jpeg": _encode_jpeg,
}
_DECODERS: dict[str, Callable[[str, Buffer, int, int], np.ndarray]] = {
    "raw": _decode_raw, "lz4": _decode_lz4, "png": _decode_png, "jpeg": _decode_jpeg,
}


class Codec:
    """Encodes and decodes the eight SRNet images for one dataset encoding."""

    def __init__(self, encoding: str = DEFAULT_ENCODING) -> None:
        self.encoding = check_encoding(encoding)
        self._per_key = {key: image_encoding(encoding, key) for key in IMAGE_CHANNELS}

    def image_encoding(self, key: str) -> str:
        """The codec used for image `key` ("png" for masks in jpeg mode)."""
        _check_key(key)
        return self._per_key[key]

    def encode(self, key: str, array: np.ndarray) -> bytes:
        """Encode one RGB (H, W, 3) or single-channel (H, W) uint8 image to bytes."""
        return _ENCODERS[self.image_encoding(key)](key, _check_array(key, array))

    def decode(self, key: str, data: Buffer, height: int, width: int) -> np.ndarray:
        """Decode bytes to an (H, W[, 3]) uint8 array; a payload of the wrong size raises CorruptShardError."""
        if height <= 0 or width <= 0:
            raise CorruptShardError(f"image {key!r} has a non-positive declared size {height}x{width}")
        return _DECODERS[self.image_encoding(key)](key, data, int(height), int(width))


_CODECS = {name: Codec(name) for name in ENCODINGS}


def get_codec(encoding: str) -> Codec:
    """The shared Codec for `encoding` (ValueError naming an unknown one)."""
    return _CODECS[check_encoding(encoding)]


def encode(key: str, array: np.ndarray, encoding: str = DEFAULT_ENCODING) -> bytes:
    """Encode image `key` with the dataset encoding `encoding`."""
    return get_codec(encoding).encode(key, array)


def decode(key: str, data: Buffer, height: int, width: int, encoding: str = DEFAULT_ENCODING) -> np.ndarray:
    """Decode image `key` stored with the dataset encoding `encoding` to its (H, W[, 3]) array."""
    return get_codec(encoding).decode(key, data, height, width)
