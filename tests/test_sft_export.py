"""`gazex export-sft`: the six GazeX tasks in the upstream ShareGPT format, checked field by field, round-tripped."""

from __future__ import annotations

import json
import re

import pytest

from gazex_core.upstream_format import (PROMPTS, ScaledBox, format_grounding, format_order, parse_grounding,
                                        parse_order, split_report)
from synth_support import dataset
from training.cli import main as gazex
from training.data.loaders import load_dataset
from training.sft_export import TASKS, ExportError, export_sharegpt, read_sharegpt, read_video

# The sample record a reviewer can compare with the upstream repository's Create_Training_Data.py output.
SAMPLE_GROUND = {
    "messages": [
        {"role": "user", "content": "<image>This is a chest X-ray. For the finding \"Small left pleural effusion.\", "
                                    "identify the visual clues and an overall observation area."},
        {"role": "assistant", "content": "visual clues : [(160,180)(200,230)(181,204),(40,50)(60,70)(50,60)] "
                                         "observation : [(150,170)(210,240)(180,205)]"},
    ],
    "images": ["images/s1.png"],
    "videos": [],
}


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    out = tmp_path_factory.mktemp("sft")
    studies = load_dataset("synthetic", dataset(n=3, seed=11)).studies
    summary = export_sharegpt(studies, out, seed=3)
    return out, summary, json.loads((out / "gazex_sft.json").read_text())


def test_every_task_is_written_with_upstream_fields(export):
    out, summary, rows = export
    assert summary["studies_without_gaze"] == 0
    assert all(summary["per_task"][t] > 0 for t in TASKS), summary["per_task"]
    info = json.loads((out / "dataset_info.json").read_text())["gazex"]
    assert info == {"file_name": "gazex_sft.json", "formatting": "sharegpt",
                    "columns": {"messages": "messages", "images": "images", "videos": "videos"},
                    "tags": {"role_tag": "role", "content_tag": "content", "user_tag": "user",
                             "assistant_tag": "assistant"}}
    for row in rows:
        assert set(row) == {"messages", "images", "videos", "gazex"}
        assert [m["role"] for m in row["messages"]] == ["user", "assistant"]
        user = row["messages"][0]["content"]
        # LLaMA-Factory pairs each placeholder with one file, in order: videos first, then the image
        assert user.count("<image>") == len(row["images"]) and user.count("<video>") == len(row["videos"])
        assert re.match(r"^(<video>)?(<image>)?[A-Z]", user)
        for rel in row["images"] + row["videos"]:
            assert not rel.startswith("/") and (out / rel).is_file()


def test_sample_record_has_the_upstream_shape(export):
    _, _, rows = export
    ground = next(r for r in rows if r["gazex"]["task"] == "ground")
    assert {k: ground[k] for k in SAMPLE_GROUND}.keys() == SAMPLE_GROUND.keys()
    sample_shape = re.sub(r"\d+", "N", SAMPLE_GROUND["messages"][1]["content"])
    target = ground["messages"][1]["content"]
    assert re.fullmatch(r"visual clues : \[(\(N,N\)){3}(,(\(N,N\)){3})*\]( observation : \[(\(N,N\)){3}\])?",
                        re.sub(r"\d+", "N", target)), target
    assert sample_shape.startswith("visual clues : [(N,N)(N,N)(N,N)")


def test_round_trip(export):
    out, summary, rows = export
    records = read_sharegpt(out)
    assert len(records) == summary["records"] == len(rows)
    for rec, row in zip(records, rows):
        assert rec.task == row["gazex"]["task"]
        if rec.task == "ground":
            g = rec.grounding
            assert not g.dropped and g.clues
            assert format_grounding(g.clues, g.observation) == rec.assistant
        if rec.task in ("order", "finding_order"):
            n = int(re.search(r"contains (\d+) shuffled", rec.user).group(1))
            o = parse_order(rec.assistant, n)
            assert not o.dropped and sorted(o.order) == list(range(1, n + 1))
            assert format_order(o.order, o.description or None) == rec.assistant
        if rec.videos:
            n = int(re.search(r"contains (\d+)", rec.user).group(1))
            assert len(read_video(rec.videos[0])) == n
    reports = [r for r in records if r.task == "report"]
    assert split_report(reports[0].assistant)[0][0] == "findings"


def test_prompt_wording_identifies_its_task():
    from gazex_core.upstream_format import prompt, task_of_prompt

    for task in PROMPTS:
        assert task_of_prompt(prompt(task, n_frames=7, sentence="Small left pleural effusion.")) == task


def test_parser_keeps_what_it_can_and_says_what_it_dropped():
    g = parse_grounding("visual clues : [(1,2)(3,4)(2,3),(9,9)(1,1)(5,5),(4,4)(6] observation : [(0,0)(8,8)(4,4)]")
    assert g.clues == [ScaledBox(1, 2, 3, 4, 2, 3)]
    assert g.observation == ScaledBox(0, 0, 8, 8, 4, 4)
    assert len(g.dropped) == 2 and all("\n" not in d for d in g.dropped)
    assert parse_grounding("the heart is normal").dropped == ["no 'visual clues' list"]
    assert parse_order("<seq>3124</seq><description>Clear.</descriptions>", 4).order == [3, 1, 2, 4]
    assert parse_order("<seq>3324</seq>", 4).dropped


def test_bad_input_is_one_line(tmp_path, capsys):
    with pytest.raises(ExportError, match="unknown task"):
        export_sharegpt([], tmp_path, tasks=("report", "telepathy"))
    (tmp_path / "gazex_sft.json").write_text('[{"messages": [{"role": "user", "content": "hi"}]}]')
    with pytest.raises(ExportError, match="record 0: needs a user and an assistant message"):
        read_sharegpt(tmp_path)


def test_cli_exports_a_dataset_without_gaze_as_gaze_free_tasks(tmp_path, capsys):
    data = dataset(n=3, seed=11)
    assert gazex(["export-sft", "--data", str(data), "--format", "sharegpt", "--out", str(tmp_path / "o"),
                  "--tasks", "report,ground"]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith("wrote ") and "'order': 0" in line
