"""SRNet (Wu et al., ACM MM 2019) for scene-text editing: model, losses and a pure training step.

`model` depends on torch only; `losses` adds an optional VGG19 loader (safetensors for .safetensors files);
`step` holds the training-step function the trainer calls.
"""
from textsynth.srnet.model import Discriminator, Generator, SRNetConfig

__all__ = ["Discriminator", "Generator", "SRNetConfig"]
