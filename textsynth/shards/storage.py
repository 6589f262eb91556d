"""Where shard bytes live: paths and URIs resolved to a pyarrow FileSystem, atomic writes there, redaction.

Local files are written to a hidden temp name, fsynced and renamed; on object stores (S3, GCS)
the final key is written directly, because an object only appears when its upload completes.
"""
from __future__ import annotations

import os
import posixpath
import re
import urllib.parse

import pyarrow as pa
import pyarrow.fs as pafs

from .. import atomic


_USERINFO_RE = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^/?#@\s]*)@")
_SECRET_PARAM_RE = re.compile(
    r"(?P<name>(?<=[?&])[A-Za-z0-9_.-]*(?:key|secret|token|password|passwd|signature|credential|session)"
    r"[A-Za-z0-9_.-]*=)(?P<value>[^&#\s'\"]*)", re.IGNORECASE)


def redact(text: object) -> str:
    """`text` with URI userinfo (s3://KEY:SECRET@...) and secret-looking query values replaced by ***."""
    s = str(text)
    s = _USERINFO_RE.sub(lambda m: f"{m.group('scheme')}***@", s)
    return _SECRET_PARAM_RE.sub(lambda m: f"{m.group('name')}***", s)


def s3_from_storage_options(uri: str, options: dict) -> tuple[pafs.FileSystem, str]:
    """(S3FileSystem, bucket/key) for `s3://bucket/key` and fsspec/s3fs-style `storage_options`.

    Understood keys: key, secret, token, endpoint_url, region and client_kwargs.{endpoint_url,
    region_name}; anything missing falls back to the AWS_* variables, as in HF `datasets`.
    """
    u = urllib.parse.urlsplit(uri)
    if u.scheme not in ("s3", "s3a"):
        raise ValueError(f"storage_options are supported for s3:// URIs only, got {uri!r}")
    known = {"key", "secret", "token", "endpoint_url", "region", "client_kwargs", "anon"}
    unknown = sorted(set(options) - known)
    if unknown:
        raise ValueError(f"unsupported storage_options key(s) {unknown} (supported: {sorted(known)})")
    client = options.get("client_kwargs") or {}
    kwargs: dict = {}
    endpoint = options.get("endpoint_url") or client.get("endpoint_url") or os.environ.get("AWS_ENDPOINT_URL")
    if endpoint:
        e = urllib.parse.urlsplit(endpoint if "://" in endpoint else f"https://{endpoint}")
        kwargs.update(endpoint_override=e.netloc, scheme=e.scheme)
    region = options.get("region") or client.get("region_name")
    if region:
        kwargs["region"] = region
    if options.get("key"):
        kwargs.update(access_key=options["key"], secret_key=options.get("secret"), session_token=options.get("token"))
    if options.get("anon"):
        kwargs["anonymous"] = True
    return pafs.S3FileSystem(**kwargs), (u.netloc + u.path).rstrip("/")


def locate(path: str, filesystem: pafs.FileSystem | None = None,
            storage_options: dict | None = None) -> tuple[pafs.FileSystem, str]:
    """(filesystem, path) for a local path, a URI such as s3://bucket/key, or an explicit filesystem.

    Plain s3:// URIs take endpoint and credentials from AWS_* variables (AWS_ENDPOINT_URL included),
    `storage_options` as HF `datasets`/fsspec spell them, or a `?endpoint_override=` query.
    """
    if not isinstance(path, (str, os.PathLike)) or not str(path):
        raise ValueError(f"path must be a non-empty string or os.PathLike, got {path!r}")
    path = os.fspath(path)
    if filesystem is not None:
        if not isinstance(filesystem, pafs.FileSystem):
            raise ValueError(f"filesystem must be a pyarrow.fs.FileSystem, got {type(filesystem).__name__}")
        return filesystem, path
    if storage_options:
        return s3_from_storage_options(path, storage_options)
    if "://" in path:
        try:
            return pafs.FileSystem.from_uri(path)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError) as exc:
            raise ValueError(redact(f"cannot resolve filesystem for {path!r}: {exc}")) from None
    return pafs.LocalFileSystem(), os.path.abspath(path)


def is_local(fs: pafs.FileSystem) -> bool:
    """True when `fs` paths are plain OS paths, so os-level fsync/rename/mmap apply."""
    return isinstance(fs, pafs.LocalFileSystem)


def join(root: str, *parts: str) -> str:
    """Join path parts with '/' (pyarrow filesystems use POSIX-style paths, also for S3).

    A URI root keeps its query (s3://b/ds?endpoint_override=..) after the joined path, not inside it.
    """
    if "://" in root:
        u = urllib.parse.urlsplit(root)
        if u.query or u.fragment:
            return urllib.parse.urlunsplit(u._replace(path=posixpath.join(u.path or "/", *parts)))
    return posixpath.join(root, *parts)


def ensure_dir(fs: pafs.FileSystem, directory: str) -> None:
    """Create `directory` and its parents (object stores have no directories; harmless there)."""
    if directory:
        fs.create_dir(directory, recursive=True)


def atomic_write_bytes(fs: pafs.FileSystem, path: str, data: bytes) -> None:
    """Write `data` to `path` so readers see either the old file or the whole new one (locally via
    `textsynth.atomic`; on object stores one PUT, which is atomic there)."""
    if is_local(fs):
        atomic.write_bytes(path, data)
        return
    ensure_dir(fs, posixpath.dirname(path))
    with fs.open_output_stream(path) as out:
        out.write(data)


def read_bytes(fs: pafs.FileSystem, path: str) -> bytes:
    """The whole content of `path`."""
    with fs.open_input_stream(path) as f:
        return f.read()


def file_size(fs: pafs.FileSystem, path: str) -> int | None:
    """Size of `path` in bytes, or None if it does not exist."""
    info = fs.get_file_info(path)
    return None if info.type == pafs.FileType.NotFound else info.size
