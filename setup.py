"""Build step only (metadata lives in pyproject.toml): copy the top-level asset folders into the wheel.

fonts/, backgrounds/, corpora/ and pipelines/ stay at the repository root in the source tree; a
built wheel carries them as package data under textsynth/_assets/ (see textsynth/assets.py). An
editable install skips the copy: it finds them at the repository root.
"""
import os

from setuptools import setup
from setuptools.command.build_py import build_py

ASSET_DIRS = ("fonts", "backgrounds", "corpora", "pipelines")


class BuildPyWithAssets(build_py):
    """build_py, plus the asset folders copied to <build_lib>/textsynth/_assets/."""

    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return
        here = os.path.dirname(os.path.abspath(__file__))
        for name in ASSET_DIRS:
            self.copy_tree(os.path.join(here, name), os.path.join(self.build_lib, "textsynth", "_assets", name))


setup(cmdclass={"build_py": BuildPyWithAssets})
