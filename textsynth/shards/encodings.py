"""Image codecs by name ("raw", "lz4", "png", "jpeg"): arrays are RGB (H, W, 3) or (H, W) uint8 in and out.

raw/lz4 store the array bytes (decode needs H, W; channels come from IMAGE_CHANNELS); png/jpeg are
self-describing. In "jpeg" mode the single-channel images stay PNG because they must stay exact.
`Codec.decode_into` writes into a caller's buffer instead (lz4: straight from the payload through the
system liblz4, see `Lz4Frames`); `Codec.frame_decoder` is the same by address, for batched readers.
"""
from __future__ import annotations

import os
import threading
from typing import Any, Callable, Union

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


class Lz4Frames:
    """LZ4 frame decompression straight into a caller's buffer via the system liblz4 (ctypes).

    python-lz4 can only return a new bytes object (an allocation and an extra pass per image); this
    writes into the caller's buffer, reuses one decompression context per thread (a forked process gets
    its own copy), and can skip the frame's content checksum (XXH32, ~40% of the decode time) for
    payloads the caller has already verified (a row checksum). Unavailable -> python-lz4 is used.
    """

    def __init__(self) -> None:
        import ctypes
        import ctypes.util

        name = ctypes.util.find_library("lz4") or "liblz4.so.1"
        lib = ctypes.CDLL(name)
        version = lib.LZ4_versionNumber()
        if version < 10803:  # LZ4F_resetDecompressionContext appeared in 1.8.3
            raise OSError(f"{name} {version} is too old")
        size_p = ctypes.POINTER(ctypes.c_size_t)

        class Options(ctypes.Structure):  # LZ4F_decompressOptions_t
            _fields_ = [("stableDst", ctypes.c_uint), ("skipChecksums", ctypes.c_uint),
                        ("reserved1", ctypes.c_uint), ("reserved0", ctypes.c_uint)]

        lib.LZ4F_decompress.argtypes = [ctypes.c_void_p, ctypes.c_void_p, size_p, ctypes.c_void_p, size_p,
                                        ctypes.c_void_p]
        lib.LZ4F_decompress.restype = ctypes.c_size_t
        lib.LZ4F_isError.argtypes = [ctypes.c_size_t]
        lib.LZ4F_isError.restype = ctypes.c_uint
        lib.LZ4F_getErrorName.argtypes = [ctypes.c_size_t]
        lib.LZ4F_getErrorName.restype = ctypes.c_char_p
        lib.LZ4F_createDecompressionContext.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_uint]
        lib.LZ4F_resetDecompressionContext.argtypes = [ctypes.c_void_p]
        lib.LZ4F_resetDecompressionContext.restype = None
        self.ctypes = ctypes
        self.lib = lib
        self.version = version
        self.can_skip = version >= 10904  # skipChecksums exists from lz4 1.9.4
        self._skip = Options(0, 1, 0, 0)  # kept alive: skip_opts is its address
        self.skip_opts = ctypes.addressof(self._skip) if self.can_skip else None
        self.local = threading.local()

    def context(self) -> Any:
        """This thread's decompression context and size cells (ctx, dst, src, dst_p, src_p)."""
        local = self.local
        ctx = getattr(local, "ctx", None)
        if ctx is None:
            ctx = self.ctypes.c_void_p()
            if self.lib.LZ4F_createDecompressionContext(self.ctypes.byref(ctx), 100):  # LZ4F_VERSION
                raise OSError("LZ4F_createDecompressionContext failed")
            local.ctx = ctx
            local.dst, local.src = self.ctypes.c_size_t(), self.ctypes.c_size_t()
            local.dst_p, local.src_p = self.ctypes.byref(local.dst), self.ctypes.byref(local.src)
        return local

    def decoder(self) -> Callable[[int, int, int, int, bool], str | None]:
        """This thread's `decode(dst_addr, dst_len, src_addr, src_len, verify)`: decompress one whole frame of
        exactly dst_len bytes by address; None on success, else what went wrong. verify=False skips the
        frame's content checksum where liblz4 can (>= 1.9.4). Everything it needs is bound once, so a
        batched caller pays one Python call per image."""
        local = self.context()
        decompress, ctx, skip, failure = self.lib.LZ4F_decompress, local.ctx, self.skip_opts, self.failure
        dst_v, src_v, dst_p, src_p = local.dst, local.src, local.dst_p, local.src_p

        def decode(dst_addr: int, dst_len: int, src_addr: int, src_len: int, verify: bool = True) -> str | None:
            dst_v.value = dst_len
            src_v.value = src_len
            ret = decompress(ctx, dst_addr, dst_p, src_addr, src_p, None if verify else skip)
            if ret or dst_v.value != dst_len or src_v.value != src_len:
                return failure(ret, dst_len, src_len)
            return None

        return decode

    def failure(self, ret: int, dst_len: int, src_len: int) -> str:
        """Reset this thread's context after a failed call and say what went wrong."""
        local = self.context()
        self.lib.LZ4F_resetDecompressionContext(local.ctx)
        if self.lib.LZ4F_isError(ret):
            return self.lib.LZ4F_getErrorName(ret).decode()
        return (f"frame incomplete or of the wrong size (wrote {local.dst.value} of {dst_len} bytes, "
                f"read {local.src.value} of {src_len})")


def _load_liblz4() -> Lz4Frames | None:
    if os.environ.get("TEXTSYNTH_NO_LIBLZ4"):
        return None
    try:
        return Lz4Frames()
    except (OSError, AttributeError):
        return None


LIBLZ4: Lz4Frames | None = _load_liblz4()  # None: python-lz4 decodes (and always checks frame checksums)


def _lz4_into(key: str, data: Buffer, dst: np.ndarray, verify: bool) -> None:
    src = np.ascontiguousarray(_as_u8(data))
    lib = LIBLZ4
    if lib is not None:
        err = lib.decoder()(dst.ctypes.data, dst.nbytes, src.ctypes.data, src.nbytes, verify)
    else:
        try:
            raw = lz4.frame.decompress(src)
            err = None if len(raw) == dst.nbytes else f"{len(raw)} bytes, expected {dst.nbytes}"
        except RuntimeError as exc:
            err = str(exc)
        if err is None:
            dst.reshape(-1)[:] = np.frombuffer(raw, np.uint8)
    if err is not None:
        raise CorruptShardError(f"lz4 payload of image {key!r} does not decompress to {dst.shape}: {err}")


def _raw_into(key: str, data: Buffer, dst: np.ndarray, verify: bool) -> None:
    flat = _as_u8(data)
    if flat.size != dst.size:
        raise CorruptShardError(f"raw payload of image {key!r} has {flat.size} bytes, expected {dst.size} "
                                f"for shape {dst.shape}")
    dst.reshape(-1)[:] = flat


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

    def decode_into(self, key: str, data: Buffer, dst: np.ndarray, verify: bool = True) -> None:
        """Decode into the C-contiguous uint8 `dst` shaped as the stored image ((H, W, 3) or (H, W)).

        lz4 decompresses straight from `data` into `dst` (liblz4; verify=False skips the frame checksum
        of a payload the caller verified otherwise); raw is one copy; png/jpeg decode then copy.
        A payload that does not fill `dst` exactly raises CorruptShardError.
        """
        enc = self.image_encoding(key)
        if enc == "lz4":
            _lz4_into(key, data, dst, verify)
        elif enc == "raw":
            _raw_into(key, data, dst, verify)
        else:
            dst[...] = _DECODERS[enc](key, data, dst.shape[0], dst.shape[1])

    def frame_decoder(self) -> Callable[[int, int, int, int, bool], str | None] | None:
        """For lz4 with the system liblz4: this thread's by-address frame decoder (see Lz4Frames.decoder);
        None otherwise (use decode_into)."""
        lib = LIBLZ4
        return lib.decoder() if self.encoding == "lz4" and lib is not None else None


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
