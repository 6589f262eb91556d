"""The bundled photo pool: backgrounds/manifest.json matches the files on disk, every image carries an
allowed licence with its quoted evidence and pinned source package, and the default pool indexes them all."""
from __future__ import annotations

import hashlib
import json
import re
import sys
from pathlib import Path

from PIL import Image

from textsynth.synth.bgindex import BUNDLED, build_index
from textsynth.config import BackgroundConfig

ROOT = Path(__file__).resolve().parents[1]
BG = ROOT / "backgrounds"
sys.path.insert(0, str(ROOT / "scripts"))
import bg_sources  # noqa: E402  (the build script's source table: what may be bundled, and from where)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp"}


def _manifest() -> dict:
    return json.loads((BG / "manifest.json").read_text(encoding="utf-8"))


def test_manifest_matches_the_files_on_disk():
    images = _manifest()["images"]
    listed = [e["file"] for e in images]
    on_disk = sorted(p.name for p in BG.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    assert len(listed) == len(set(listed)) and sorted(listed) == on_disk
    assert len(images) >= 100
    total = 0
    for e in images:
        data = (BG / e["file"]).read_bytes()
        total += len(data)
        assert hashlib.sha256(data).hexdigest() == e["sha256"], e["file"]
        with Image.open(BG / e["file"]) as im:
            assert (im.width, im.height, im.mode) == (e["width"], e["height"], e["mode"]), e["file"]
            assert max(im.size) <= 1024 and min(im.size) >= 32
    assert total < 20 * 2**20  # the wheel carries the pool: keep it modest


def test_every_image_has_an_allowed_licence_with_its_evidence():
    manifest = _manifest()
    attribution = (BG / "ATTRIBUTION.md").read_text(encoding="utf-8")
    packages = {(p["name"], p["version"]): p for p in bg_sources.PACKAGES.values()}
    for e in manifest["images"]:
        assert e["license"] in bg_sources.ALLOWED_LICENSES, e
        assert e["license_quote"].strip() and e["license_statement"].strip(), e["file"]
        pkg = e["package"]
        assert pkg["registry"] in {"pypi", "npm", "debian"} and pkg["name"] and pkg["version"]
        if pkg["name"] != "scikit-image":  # fetched by the build script: pinned and hashed there
            assert packages[(pkg["name"], pkg["version"])]["sha256"] == pkg["sha256"]
        # the quoted statement names the licence the manifest claims
        quote = e["license_quote"]
        lic = e["license"]
        evidence = {
            "CC0-1.0": r"CC0|Creative Commons Zero",
            "public-domain": r"public[ -]domain",
        }.get(lic, re.escape(lic) + "|" + re.escape(lic.replace("CC-BY-", "licenses/by/")))
        assert re.search(evidence, quote, re.I), (e["file"], lic, quote)
        assert f"`{e['file']}`" in attribution and quote.splitlines()[0].strip() in attribution
    assert {x["reason"] for x in manifest["excluded"]}  # the looked-at-and-dropped list is recorded


def test_default_pool_indexes_every_bundled_photo():
    cfg = BackgroundConfig()
    entries, rejected = build_index(True, (), cfg.min_side)
    assert rejected == []
    assert sorted(e.name for e in entries if e.source == BUNDLED) == sorted(x["file"] for x in _manifest()["images"])
    assert cfg.texture_p <= 0.2  # photos are plentiful: procedural textures are the minority


def test_rcc_reader_and_dep5_lookup_on_built_inputs():
    """The two parsers the build relies on, on inputs built here: a Qt resource tree with one zlib-compressed
    and one raw file, and a copyright file where the last matching Files: paragraph must win."""
    import struct
    import zlib

    def name_rec(s):
        return struct.pack(">HI", len(s), 0) + s.encode("utf-16-be")

    names = b"".join(name_rec(s) for s in ("dir", "a.txt", "b.bin"))
    n_dir, n_a, n_b = 0, len(name_rec("dir")), len(name_rec("dir")) + len(name_rec("a.txt"))
    a_raw, b_raw = b"hello hello hello", b"\x00\x01\x02"
    a_blob = struct.pack(">I", len(a_raw)) + zlib.compress(a_raw)
    data = struct.pack(">I", len(a_blob)) + a_blob + struct.pack(">I", len(b_raw)) + b_raw
    b_off = 4 + len(a_blob)
    ts = b"\x00" * 8

    def dir_node(noff, count, first):
        return struct.pack(">IHII", noff, 2, count, first) + ts

    def file_node(noff, flags, doff):
        return struct.pack(">IHHHI", noff, flags, 0, 0, doff) + ts

    tree = dir_node(0, 1, 1) + dir_node(n_dir, 2, 2) + file_node(n_a, 1, 0) + file_node(n_b, 0, b_off)
    header = 20
    blob = struct.pack(">4sIIII", b"qres", 2, header, header + len(tree), header + len(tree) + len(data))
    blob += tree + data + names
    assert bg_sources.rcc_files(blob) == {"dir/a.txt": a_raw, "dir/b.bin": b_raw}

    copyright_text = ("Files: *\nCopyright: x\nLicense: GPL-2+\n\n"
                      "Files: img/*.jpg\nCopyright: y\nLicense: CC0-1.0\n\n"
                      "Files: img/bad.jpg\nCopyright: z\nLicense: CC-BY-SA-4.0\n")
    assert bg_sources.dep5_paragraph(copyright_text, "img/good.jpg")[0] == "CC0-1.0"
    assert bg_sources.dep5_paragraph(copyright_text, "img/bad.jpg")[0] == "CC-BY-SA-4.0"
    assert bg_sources.dep5_paragraph(copyright_text, "src/x.c")[0] == "GPL-2+"
