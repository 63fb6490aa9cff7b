"""The CPU-only workstation install the README offers (`bash scripts/install_workstation.sh`), installed for real
into a fresh virtualenv from the same package sources as the default install.

It must draft exactly what the default install drafts, carry no CUDA library and no torchvision, still load peft
(LoRA re-fine-tunes), and refuse the Qwen2-VL backbone in one line. Its memory is a benchmark
(benchmarks/bench_cold_start.py, bench_app_memory.py), not a test.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from gazex_core import GazeX
from qwen_support import tiny_base

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def workstation_python(tmp_path_factory) -> Path:
    venv = tmp_path_factory.mktemp("workstation") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    install = subprocess.run(["bash", str(REPO / "scripts" / "install_workstation.sh")], capture_output=True,
                             text=True, timeout=1200, env={**os.environ, "PYTHON": str(python)})
    assert install.returncode == 0, install.stderr[-2000:]
    return python


@pytest.fixture(scope="module")
def chest_study(tmp_path_factory) -> Path:
    from training.synth.generator import generate

    folder = tmp_path_factory.mktemp("study")
    generate(1, folder, seed=11, workers=1, progress=False)
    return sorted(folder.rglob("*.dcm"))[0]


def _in(python: Path, code: str) -> str:
    out = subprocess.run([str(python), "-c", code], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


def test_its_torch_is_the_cpu_build_and_maps_no_cuda_library(workstation_python):
    maps = json.loads(_in(workstation_python, (
        "import json, importlib.util, torch, peft; print(json.dumps([torch.__version__, torch.version.cuda, "
        "sorted({l.split()[-1].rsplit('/', 1)[-1] for l in open('/proc/self/maps') if 'libcu' in l or 'libnv' in l}), "
        "importlib.util.find_spec('torchvision') is None, importlib.util.find_spec('torchxrayvision') is not None]))")))
    version, cuda, cuda_libraries, no_torchvision, has_torchxrayvision_data = maps
    assert version.endswith("+cpu") and cuda is None
    assert cuda_libraries == []
    assert no_torchvision and has_torchxrayvision_data


def test_it_drafts_what_the_default_install_drafts(workstation_python, chest_study):
    out = subprocess.run([str(workstation_python), "-m", "training.cli", "analyze", str(chest_study), "--json",
                          "--threads", "1"], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    theirs = json.loads(out.stdout)
    threads = torch.get_num_threads()
    try:
        ours = GazeX(threads=1).analyze(chest_study).to_dict()
    finally:
        torch.set_num_threads(threads)
    assert theirs["input_check"]["passed"] and ours["input_check"]["passed"]
    assert [s["text"] for s in theirs["sentences"]] == [s["text"] for s in ours["sentences"]]
    for a, b in zip(theirs["sentences"], ours["sentences"]):
        assert a["confidence"] == pytest.approx(b["confidence"], abs=1e-4)
        assert [c for p in a["trajectory"] for c in (p["x"], p["y"])] == pytest.approx(
            [c for p in b["trajectory"] for c in (p["x"], p["y"])], abs=1e-4)


def test_it_refuses_the_qwen2vl_backbone_in_one_line(workstation_python, chest_study):
    out = subprocess.run([str(workstation_python), "-m", "training.cli", "analyze", str(chest_study), "--model",
                          str(tiny_base()), "--json"], capture_output=True, text=True, cwd=REPO, timeout=300)
    lines = out.stderr.strip().splitlines()
    assert out.returncode != 0 and len(lines) == 1, out.stderr[-2000:]
    assert lines[0].startswith("gazex analyze: ") and "needs torchvision built for torch 2.13.0+cpu" in lines[0]
    assert "No module named 'torchvision'" in lines[0]
