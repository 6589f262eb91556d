"""Layers import downward only: the allowed directions of docs/ARCHITECTURE.md, checked on the real import graph."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "textsynth"

# layer of each module or sub-package (dotted name under textsynth); a module may import only from layers
# with a number <= its own (same layer included); the first matching prefix wins
LAYERS: list[tuple[str, int]] = [
    ("shards.storage", 1),  # filesystem primitives: path/URI resolution, the one atomic write, redaction
    ("sample", 1), ("errors", 1), ("atomic", 1), ("typedconfig", 1), ("assets", 1), ("checks", 1), ("procstats", 1), ("scripts", 1), ("__init__", 1),
    ("config", 2), ("recipes", 2), ("overrides", 2), ("synth", 2),  # one sample: pure, seeded
    ("shards", 3), ("fingerprint", 3), ("parallel", 3), ("interop.srnet_folder", 3),
    ("generate", 4), ("interop", 4), ("loading", 4), ("local_dataset", 4),
    ("srnet", 5), ("loader_profile", 5),
    ("commands", 6), ("cli", 6), ("__main__", 6),
]


def layer_of(module: str) -> int:
    """Layer of a dotted module name under textsynth (KeyError for a module no layer claims)."""
    for prefix, layer in LAYERS:
        if module == prefix or module.startswith(prefix + "."):
            return layer
    raise KeyError(module)


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts.pop()
    return ".".join(parts)


def _imports(path: Path, module: str) -> list[str]:
    """textsynth modules imported by `path` (absolute or relative, top level or inside functions)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module.split(".")[:-1] if path.name != "__init__.py" else module.split(".")
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [a.name[len("textsynth."):] for a in node.names if a.name.startswith("textsynth.")]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)] if node.level > 1 else package
                target = ".".join([*base, node.module] if node.module else base)
                names = [target] if node.module else [f"{target}.{a.name}".strip(".") for a in node.names]
                out += [n for n in names if n]
            elif node.module and node.module.startswith("textsynth."):
                out.append(node.module[len("textsynth."):])
            elif node.module == "textsynth":
                out += [a.name for a in node.names]
    return out


MODULES = sorted(PACKAGE.rglob("*.py"))


def test_every_module_has_a_layer():
    unclaimed = []
    for path in MODULES:
        try:
            layer_of(_module_name(path))
        except KeyError:
            unclaimed.append(_module_name(path))
    assert not unclaimed, f"modules with no layer in tests/test_layers.py: {unclaimed}"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: _module_name(p))
def test_imports_go_downward_only(path):
    module = _module_name(path)
    mine = layer_of(module)
    upward = []
    for target in _imports(path, module):
        try:
            theirs = layer_of(target)
        except KeyError:
            continue  # a name imported from a package __init__ (e.g. `from . import x` of a function)
        if theirs > mine:
            upward.append(f"{target} (layer {theirs})")
    assert not upward, f"textsynth.{module} (layer {mine}) imports upward: {upward}"
