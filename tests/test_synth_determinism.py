"""Same seed -> byte-identical output whatever the worker count; another seed -> another dataset."""

from __future__ import annotations

import csv

import pytest

from training.cli import main
from training.synth.study import split_of, study_ids

from training.synth import generate

from synth_support import dataset, tree_bytes, tree_digest

# Digests of the generator's output at main 61519be, before the 2026-12-01 evening speed-up: a faster
# generator must write the very same bytes, so data already generated (and models trained on it) stay valid.
GOLDEN_256_SEED3_RAW_GAZE = "577c6337a5bf056d46b42aae798801fb909968c5da00fd691a18deb8e6e0715e"
GOLDEN_1024_SEED0_3_STUDIES = "a873e478204619f8e85b737d157df2fab0626c1a8c628c9f0102562291b8388c"


def test_same_seed_gives_identical_files_with_1_or_2_workers():
    one = tree_bytes(dataset(n=6, seed=3, workers=1, raw_gaze=True))
    two = tree_bytes(dataset(n=6, seed=3, workers=2, raw_gaze=True))
    assert one.keys() == two.keys()
    different = [name for name in one if one[name] != two[name]]
    assert different == []
    assert any(name.endswith(".dcm") for name in one) and any(name.endswith("gaze.csv") for name in one)


def test_output_is_byte_identical_to_the_generator_the_model_was_trained_on(tmp_path):
    assert tree_digest(dataset(n=6, seed=3, workers=1, raw_gaze=True)) == GOLDEN_256_SEED3_RAW_GAZE
    assert tree_digest(generate(3, tmp_path, seed=0, workers=2, progress=False)) == GOLDEN_1024_SEED0_3_STUDIES


def test_different_seed_gives_different_studies():
    a = tree_bytes(dataset(n=6, seed=3, workers=1, raw_gaze=True))
    b = tree_bytes(dataset(n=6, seed=4, workers=1))
    assert a["metadata.csv"] != b["metadata.csv"]
    dicoms_a = sorted(v for k, v in a.items() if k.endswith(".dcm"))
    dicoms_b = sorted(v for k, v in b.items() if k.endswith(".dcm"))
    assert not set(dicoms_a) & set(dicoms_b)


def test_ids_are_unique_and_mimic_shaped():
    ids = [study_ids(0, i) for i in range(5000)]
    assert len({i.study_id for i in ids}) == 5000 and len({i.subject_id for i in ids}) == 5000
    assert all(len(i.study_id) == 8 and i.study_id[0] == "5" and i.subject_id[0] == "1" for i in ids)
    assert all(len(i.dicom_id) == 44 and i.dicom_id.count("-") == 4 for i in ids)


def test_split_is_a_stable_hash_of_study_id_near_80_10_10():
    splits = [split_of(study_ids(1, i).study_id) for i in range(3000)]
    share = {s: splits.count(s) / len(splits) for s in ("train", "val", "test")}
    assert 0.76 < share["train"] < 0.84 and 0.07 < share["val"] < 0.13 and 0.07 < share["test"] < 0.13
    rows = list(csv.DictReader(open(dataset() / "metadata.csv")))
    assert all(r["split"] == split_of(r["study_id"]) for r in rows)


@pytest.mark.parametrize("args", [["--n", "0"], ["--n", "x"], ["--n", "2", "--workers", "0"], ["--n", "2", "--size", "-5"]])
def test_bad_arguments_are_rejected(args, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["synth", "--out", str(tmp_path), *args])
    assert exc.value.code == 2
    assert "error" in capsys.readouterr().err


def test_unwritable_output_dir_is_one_line_error(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    assert main(["synth", "--n", "1", "--out", str(blocker / "out")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "cannot write to output directory" in err


def test_too_small_size_is_one_line_error(tmp_path, capsys):
    assert main(["synth", "--n", "1", "--out", str(tmp_path), "--size", "64"]) == 1
    assert "--size must be at least" in capsys.readouterr().err


def test_missing_torchxrayvision_data_file_is_one_line_error(tmp_path, monkeypatch, capsys):
    from training.synth import resources

    for cached in (resources.lung_masks, resources.iu_sentences, resources.nih_box_centres):
        cached.cache_clear()
    monkeypatch.setattr(resources, "data_dir", lambda: tmp_path / "no-data")
    try:
        assert main(["synth", "--n", "1", "--out", str(tmp_path / "out"), "--workers", "1"]) == 1
    finally:
        for cached in (resources.lung_masks, resources.iu_sentences, resources.nih_box_centres):
            cached.cache_clear()
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "torchxrayvision data file" in err and "not found" in err
