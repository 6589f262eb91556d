"""Project exceptions: every failure on bad input names the file, key or value at fault."""
from __future__ import annotations


class TextsynthError(Exception):
    """Base class for all textsynth errors."""


class ConfigError(TextsynthError, ValueError):
    """A config key or value is invalid; the message names it."""


class FontError(TextsynthError):
    """No usable font, or a font file cannot be read."""


class CoverageError(TextsynthError):
    """Text contains characters that no font in the pool covers."""


class BackgroundError(TextsynthError):
    """No usable background image, or an image cannot be read."""


class CorpusError(TextsynthError):
    """A corpus is empty, unreadable, or yields no usable text."""


class RenderError(TextsynthError):
    """A sample could not be rendered within its bounded retries."""


class ShardError(TextsynthError):
    """A shard or dataset folder is invalid."""


class CorruptShardError(ShardError):
    """A shard file is truncated, corrupt, or does not match its manifest."""


class ShardSchemaError(ShardError):
    """A shard's Arrow schema or its b"textsynth" metadata is not the one this version writes."""


class InvalidSampleError(ShardError, ValueError):
    """A sample handed to a shard writer is malformed (missing key, wrong dtype, shape or channels)."""


class ManifestError(ShardError):
    """A dataset folder's textsynth.json manifest is missing, unreadable or malformed."""


class SrnetFolderError(TextsynthError):
    """An SRNet-Datagen style folder is incomplete or holds an image of the wrong shape."""


class RowChecksumError(CorruptShardError):
    """A row's stored checksum does not match its bytes (a flipped bit in an image, a text or meta)."""


class ShardIdentityError(ShardError):
    """A shard's identity metadata (dataset fingerprint, index, total) disagrees with its dataset's manifest."""


class IncompleteDatasetError(ManifestError):
    """A manifest marks its dataset incomplete, or disagrees with itself; readers refuse it without allow_partial."""
