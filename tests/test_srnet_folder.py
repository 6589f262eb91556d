"""SRNet-Datagen folder layout: import of a real reference sample, export from shards, exact round trip."""
from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from textsynth.errors import SrnetFolderError
from textsynth.sample import IMAGE_KEYS, Sample
from textsynth.shards.dataset import Dataset, shard_name, write_dataset_metadata
from textsynth.shards.writer import ShardWriter
from textsynth.interop.folder_export import export_srnet
from textsynth.interop.srnet_folder import import_srnet, read_image, write_srnet_folder

FIXTURE = Path(__file__).parent / "fixtures" / "srnet-datagen-sample"


def file_shape(path: Path) -> tuple[int, ...]:
    return cv2.imread(str(path), cv2.IMREAD_UNCHANGED).shape


def test_import_reference_sample() -> None:
    samples = list(import_srnet(FIXTURE))
    assert len(samples) == 8
    assert [s.meta["id"] for s in samples] == [f"{i:03d}" for i in range(8)]
    for s in samples:
        name = s.meta["file"]
        h, w = file_shape(FIXTURE / "i_s" / name)[:2]
        assert s.images["i_s"].shape == (h, w, 3)
        assert s.images["t_sk"].shape == s.images["mask_t"].shape == s.images["mask_s"].shape == (h, w)
        assert all(s.images[k].dtype == np.uint8 for k in IMAGE_KEYS)
        assert s.meta["mask_s_missing"] is True and not s.images["mask_s"].any()
        assert s.meta["labels_missing"] is True and s.meta["text_s"] == s.meta["text_t"] == ""
        bgr = cv2.imread(str(FIXTURE / "t_b" / name), cv2.IMREAD_COLOR)
        np.testing.assert_array_equal(s.images["t_b"], bgr[:, :, ::-1])  # RGB out
        np.testing.assert_array_equal(s.images["mask_t"], cv2.imread(str(FIXTURE / "mask_t" / name), 0))


def test_export_import_round_trip_is_exact(tmp_path: Path) -> None:
    originals = list(import_srnet(FIXTURE))
    for i, s in enumerate(originals):  # labels and a real mask_s, so the round trip covers them
        s.meta.update(text_s=f"src{i}", text_t=f"tgt {i}")
        s.images["mask_s"] = s.images["mask_t"][:, ::-1].copy()
        del s.meta["mask_s_missing"]
    root = tmp_path / "ds"
    infos = []
    for k, chunk in enumerate((originals[:5], originals[5:])):
        with ShardWriter(root / shard_name(k, 2), encoding="png") as writer:
            for s in chunk:
                writer.write(s)
            infos.append(writer.close())
    write_dataset_metadata(None, str(root), "png", infos)

    out = tmp_path / "srnet"
    assert export_srnet(root, out) == 8
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == sorted([*IMAGE_KEYS, "txt"])
    assert sorted(p.name for p in (out / "t_sk").iterdir()) == [f"{i:03d}.png" for i in range(8)]
    assert file_shape(out / "t_sk" / "000.png") == originals[0].images["t_sk"].shape  # greyscale PNG
    lines = (out / "i_t.txt").read_text(encoding="utf-8").splitlines()
    assert lines[1].split(" ", 1) == ["001.png", "tgt 1"]
    assert (out / "i_s.txt").read_text(encoding="utf-8").splitlines()[7] == "007.png src7"

    back = list(import_srnet(out))
    assert len(back) == 8
    for want, got in zip(originals, back):
        assert got.meta == want.meta
        for key in IMAGE_KEYS:
            np.testing.assert_array_equal(got.images[key], want.images[key], err_msg=key)
    with pytest.raises(SrnetFolderError, match="--overwrite"):
        export_srnet(root, out)


def test_labels_without_meta_file(tmp_path: Path) -> None:
    src = tmp_path / "src"
    shutil.copytree(FIXTURE, src)
    names = [f"{i:03d}" for i in range(8)]
    (src / "i_s.txt").write_text("000.png hello\n001.png big world\n"
                                 + "".join(f"{n}.png w{n}\n" for n in names[2:]), encoding="utf-8")
    (src / "i_t.txt").write_text("".join(f"{n} bye{n}\n" for n in names), encoding="utf-8")  # names without suffix
    first, second = list(import_srnet(src))[:2]
    assert (first.meta["text_s"], first.meta["text_t"]) == ("hello", "bye000")
    assert (second.meta["text_s"], second.meta["text_t"]) == ("big world", "bye001")
    assert "labels_missing" not in first.meta


def test_file_missing_from_one_folder_is_named(tmp_path: Path) -> None:
    src = tmp_path / "src"
    shutil.copytree(FIXTURE, src)
    (src / "t_b" / "003.png").unlink()
    with pytest.raises(SrnetFolderError, match=r"t_b/003\.png"):
        import_srnet(src)
    shutil.rmtree(src / "t_f")
    with pytest.raises(SrnetFolderError, match="t_f/"):
        import_srnet(src)


def test_image_of_wrong_size_is_named(tmp_path: Path) -> None:
    src = tmp_path / "src"
    shutil.copytree(FIXTURE, src)
    cv2.imwrite(str(src / "t_t" / "002.png"), np.zeros((5, 5, 3), np.uint8))
    with pytest.raises(SrnetFolderError, match=r"t_t/002\.png"):
        list(import_srnet(src))


def test_read_image_channel_rules(tmp_path: Path) -> None:
    grey = np.arange(12, dtype=np.uint8).reshape(3, 4)
    cv2.imwrite(str(tmp_path / "g.png"), grey)
    np.testing.assert_array_equal(read_image(tmp_path / "g.png", "mask_t"), grey)
    np.testing.assert_array_equal(read_image(tmp_path / "g.png", "i_s"), np.stack([grey] * 3, axis=2))
    cv2.imwrite(str(tmp_path / "c.png"), np.dstack([grey, grey, grey + 1]))
    with pytest.raises(SrnetFolderError, match="c.png"):
        read_image(tmp_path / "c.png", "t_sk")


def test_write_folder_rejects_newline_in_text(tmp_path: Path) -> None:
    s = next(import_srnet(FIXTURE))
    bad = Sample(images=s.images, meta={**s.meta, "text_t": "a\nb"})
    with pytest.raises(SrnetFolderError, match="newline"):
        write_srnet_folder([bad], tmp_path / "out")


def test_dataset_of_imported_samples_reads_back(tmp_path: Path) -> None:
    with ShardWriter(tmp_path / shard_name(0, 1), encoding="jpeg") as writer:
        for s in import_srnet(FIXTURE):
            writer.write(s)
        info = writer.close()
    write_dataset_metadata(None, str(tmp_path), "jpeg", [info])
    ds = Dataset(tmp_path)
    assert len(ds) == 8 and ds[3].meta["mask_s_missing"] is True
    assert ds.widths.tolist() == [file_shape(FIXTURE / "i_s" / f"{i:03d}.png")[1] for i in range(8)]
