"""Export layouts read back by small readers that follow MOSTEL's and the public SRNet port's documented
conventions (written here from their documented layouts, not copied); parallel, resumable, --limit."""
from __future__ import annotations

import os
import pty
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import io as skio

from textsynth.interop.folder_export import export_dataset, staging_dir
from textsynth.interop.folder_import import STAGING, import_folder
from textsynth.shards.dataset import Dataset, read_manifest

from .support.io_helpers import ROOT, cli, small_dataset, srnet_copy, tree


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return small_dataset(tmp_path_factory.mktemp("ds") / "ds", n=12, shards=3)


@pytest.fixture(scope="module")
def srnet_out(dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("x") / "srnet"
    export_dataset(str(dataset), str(out), "srnet", workers=2, progress=False)
    return out


def mostel_read(data_dir: Path) -> list[dict]:
    """MOSTEL's synthetic-data convention: i_t.txt lines are '<name> <target text>' (whitespace split into
    exactly two fields); images at <dir>/{i_s,t_b,t_f,mask_t,mask_s}/<name>; the recogniser label is the
    last whitespace field of the first line of txt/<name without .png>.txt."""
    out = []
    for line in (data_dir / "i_t.txt").read_text().splitlines():
        key, text = line.strip().split()
        item = {"name": key, "i_t_text": text}
        for d in ("i_s", "t_b", "t_f", "mask_t", "mask_s"):
            img = Image.open(data_dir / d / key)
            item[d] = np.asarray(img.convert("RGB") if d == "i_s" and img.mode != "RGB" else img)
        item["rec_text"] = (data_dir / "txt" / (key[:-4] + ".txt")).read_text().splitlines()[0].strip().split()[-1]
        out.append(item)
    return out


def port_train_read(data_dir: Path) -> dict[str, dict[str, np.ndarray]]:
    """The SRNet port's training dataset: names listed from t_b/, every kind read with skimage,
    t_sk and mask_t as grey."""
    items = {}
    for name in os.listdir(data_dir / "t_b"):
        items[name] = {k: skio.imread(data_dir / k / name, as_gray=k in ("t_sk", "mask_t"))
                       for k in ("i_t", "i_s", "t_sk", "t_t", "t_b", "t_f", "mask_t")}
    return items


def port_predict_read(data_dir: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The SRNet port's predict.py input: every file is '<prefix>_i_s.png' or '<prefix>_i_t.png', the
    prefix being the part of the name before the first '_'; both images are read as 3-channel arrays."""
    prefixes = {f.split("_")[0] + "_" for f in os.listdir(data_dir)}
    return {p: (skio.imread(data_dir / (p + "i_t.png")), skio.imread(data_dir / (p + "i_s.png"))) for p in prefixes}


def test_mostel_reads_the_export_pixel_exactly(dataset, srnet_out):
    ds = Dataset(dataset)
    items = mostel_read(srnet_out)
    assert len(items) == len(ds) == 12
    for i, item in enumerate(items):
        s = ds[i]
        assert item["name"] == f"{i:03d}.png"
        assert item["i_t_text"] == item["rec_text"] == s.meta["text_t"]
        for key in ("i_s", "t_b", "t_f", "mask_t", "mask_s"):
            np.testing.assert_array_equal(item[key], s.images[key], err_msg=f"{i} {key}")


def test_srnet_port_reads_the_export_pixel_exactly(dataset, srnet_out):
    ds = Dataset(dataset)
    items = port_train_read(srnet_out)
    assert sorted(items) == [f"{i:03d}.png" for i in range(12)]
    for i in range(12):
        s, item = ds[i], items[f"{i:03d}.png"]
        for key, img in item.items():
            np.testing.assert_array_equal(img, s.images[key], err_msg=f"{i} {key}")
        assert item["i_t"].ndim == 3 and item["t_sk"].ndim == 2


def test_plain_label_files_line_up_with_the_file_names(dataset, srnet_out):
    ds = Dataset(dataset)
    names = sorted(os.listdir(srnet_out / "i_s"))
    for field, file in (("text_s", "text_s.txt"), ("text_t", "text_t.txt")):
        lines = (srnet_out / file).read_text(encoding="utf-8").splitlines()
        assert lines == [ds[i].meta[field] for i in range(len(names))]
    assert (srnet_out / "i_s.txt").read_text().splitlines()[3] == f"003.png {ds[3].meta['text_s']}"


def test_srnet_predict_layout_is_read_by_the_port(dataset, tmp_path):
    out = tmp_path / "predict"
    r = export_dataset(str(dataset), str(out), "srnet-predict", workers=2, limit=7, progress=False)
    assert r.count == 7 and len(os.listdir(out)) == 14  # nothing but the pairs
    ds = Dataset(dataset)
    pairs = port_predict_read(out)
    assert sorted(pairs) == [f"{i:03d}_" for i in range(7)]
    for i in range(7):
        i_t, i_s = pairs[f"{i:03d}_"]
        np.testing.assert_array_equal(i_t, ds[i].images["i_t"])
        np.testing.assert_array_equal(i_s, ds[i].images["i_s"])


def test_glyph_masks_are_soft_glyph_alpha_inside_the_text_layer(dataset, tmp_path):
    out = tmp_path / "glyph"
    export_dataset(str(dataset), str(out), "srnet", workers=1, limit=6, glyph_masks=True, progress=False)
    ds = Dataset(dataset)
    soft = 0
    for i in range(6):
        layer = ds[i].images["mask_t"]  # binary, whole text layer (glyph + border + shadow)
        glyph = np.asarray(Image.open(out / "mask_t" / f"{i:03d}.png"))
        assert glyph.any() and not (glyph[layer == 0]).any()  # inside the layer
        soft += int(((glyph > 0) & (glyph < 255)).sum())
        src_glyph = np.asarray(Image.open(out / "mask_s" / f"{i:03d}.png"))
        assert not (src_glyph[ds[i].images["mask_s"] == 0]).any()
    assert soft > 0  # anti-aliased edges, like the reference generator's


def test_parallel_export_equals_serial(dataset, srnet_out, tmp_path):
    serial = tmp_path / "serial"
    export_dataset(str(dataset), str(serial), "srnet", workers=1, progress=False)
    assert tree(serial) == tree(srnet_out)


def test_parallel_import_equals_serial_and_limit(tmp_path):
    src = srnet_copy(tmp_path / "src", copies=2)
    a, b = tmp_path / "a", tmp_path / "b"
    import_folder(str(src), str(a), shard_size=4, workers=2, progress=False)
    import_folder(str(src), str(b), shard_size=4, workers=1, progress=False)
    assert [e["sha256"] for e in read_manifest(None, str(a))["shards"]] == \
        [e["sha256"] for e in read_manifest(None, str(b))["shards"]]
    r = import_folder(str(src), str(tmp_path / "c"), shard_size=4, workers=1, limit=5, progress=False)
    assert (r.count, r.shards) == (5, 2) and len(Dataset(tmp_path / "c")) == 5


def _kill_when(proc: subprocess.Popen, path: Path, timeout: float = 120.0) -> None:
    t0 = time.monotonic()
    while not path.exists():
        assert proc.poll() is None, f"finished before it could be killed: {proc.communicate()}"
        assert time.monotonic() - t0 < timeout
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def _spawn(*args) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "from textsynth.cli import main; main()", *map(str, args)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_killed_export_resumes_and_leaves_out_untouched(tmp_path):
    ds = small_dataset(tmp_path / "ds", n=24, shards=6)
    out = tmp_path / "out"
    proc = _spawn("export", ds, out, "--workers", "1")
    _kill_when(proc, staging_dir(out) / ".done" / "00001.json")
    assert not out.exists()  # nothing half-written in OUT
    rerun = cli("export", ds, out, "--workers", "1", check=True)
    assert re.search(r"\b[2-5] shard\(s\) resumed", rerun.stdout), rerun.stdout
    clean = tmp_path / "clean"
    export_dataset(str(ds), str(clean), "srnet", workers=1, progress=False)
    assert tree(out) == tree(clean) and sorted(os.listdir(tmp_path)) == ["clean", "ds", "out"]


def test_killed_import_resumes(tmp_path):
    src = srnet_copy(tmp_path / "src", copies=4)
    ds = tmp_path / "ds"
    proc = _spawn("import", src, ds, "--shard-size", "4", "--workers", "1")
    _kill_when(proc, ds / STAGING / "done" / "00001.json")
    assert not (ds / "textsynth.json").exists()
    rerun = cli("import", src, ds, "--shard-size", "4", "--workers", "1", check=True)
    assert re.search(r"\b([2-7]) resumed", rerun.stdout), rerun.stdout
    clean = tmp_path / "clean"
    import_folder(str(src), str(clean), shard_size=4, workers=1, progress=False)
    assert read_manifest(None, str(ds))["shards"] == read_manifest(None, str(clean))["shards"]
    assert sorted(os.listdir(ds)) == sorted(os.listdir(clean))


def test_progress_only_on_a_terminal(dataset, tmp_path):
    piped = cli("verify", dataset, "--rows", "0", check=True)
    assert piped.stderr == ""
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-c", "from textsynth.cli import main; main()", "verify", str(dataset),
                             "--rows", "0"], cwd=ROOT, stdout=subprocess.PIPE, stderr=slave,
                            env={**os.environ, "COLUMNS": "120", "TERM": "xterm"})
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 4096)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    proc.wait()
    os.close(master)
    shown = b"".join(chunks).decode(errors="replace")
    assert proc.returncode == 0 and "verify" in shown and "12/12" in shown


def test_readme_snippet_runs(dataset, tmp_path):
    """The README's SRNet / MOSTEL snippet, run as written (data/demo and out/ pointed at temp folders)."""
    import shlex

    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = text.split("### SRNet / MOSTEL codebases", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    commands = [line.split("#", 1)[0].strip() for line in block.strip().splitlines()]
    assert len(commands) == 3 and all(c.startswith("textsynth export data/demo out/") for c in commands)
    for c in commands:
        args = [a.replace("data/demo", str(dataset)).replace("out/", f"{tmp_path}/") for a in shlex.split(c)[1:]]
        cli(*args, "--workers", "1", check=True)
    assert len(mostel_read(tmp_path / "srnet")) == 12
    assert len(port_predict_read(tmp_path / "predict")) == 12
    assert len(port_train_read(tmp_path / "glyph")) == 12
