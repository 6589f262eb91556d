"""textsynth: synthetic scene-text editing pairs for SRNet-class models."""
from .config import SynthConfig
from .sample import IMAGE_KEYS, Sample

__all__ = ["IMAGE_KEYS", "Sample", "SynthConfig"]
__version__ = "0.1.0"
