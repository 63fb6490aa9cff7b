"""A tiny real training run (few steps, tiny data) reduces the loss; cache, checkpoint and resume work."""

from __future__ import annotations

import argparse

import torch

from gazex_core.inference import GazeX
from gazex_core.model import GazeXModel, init_model
from gazex_core.tokenizer import GazeXTokenizer
from model_support import dataset
from training.cache import load_cache
from training.model_cli import add_train_arguments
from training.train import DEFAULT_WEIGHTS, Batcher, compute_loss, train

ARGS = ["--image-size", "64", "--d-model", "32", "--n-heads", "2", "--encoder-layers", "1", "--decoder-layers", "1",
        "--stem-channels", "8,16,16", "--vocab-size", "400", "--batch-size", "4", "--eval-every", "20", "--warmup",
        "5", "--lr", "3e-3", "--val-size", "4", "--threads", "1", "--dropout", "0", "--seed", "0"]


def _args(data, out, cache, steps, *extra):
    parser = argparse.ArgumentParser()
    add_train_arguments(parser)
    return parser.parse_args(["--data", str(data), "--out", str(out), "--cache", str(cache), "--steps", str(steps),
                              *ARGS, *extra])


def test_tiny_training_run_reduces_loss_and_saves_a_loadable_model(tmp_path):
    data = dataset(n=12, seed=5, size=256)
    out, cache = tmp_path / "m", tmp_path / "cache"
    train(_args(data, out, cache, 40))
    assert (cache / "images_64.npy").exists() and (cache / "records.json").exists()
    trained = GazeXModel.from_pretrained(out, dtype=torch.float32).eval()
    untrained = init_model(trained.config, seed=0).eval()
    tok = GazeXTokenizer.from_file(out)
    images, records = load_cache(cache, 64)
    batch = Batcher(images, records, range(len(records)), tok, DEFAULT_WEIGHTS, True, 320, 3, 123).batch(8)
    with torch.no_grad():
        before = compute_loss(untrained, batch, "cpu")[0].item()
        after = compute_loss(trained, batch, "cpu")[0].item()
    assert after < 0.75 * before, (before, after)
    assert len(trained.config.training["history"]) == 2
    gx = GazeX(out)
    assert gx.analyze(torch.rand(128, 128).numpy()).image_width == 128


def test_resume_continues_from_the_checkpoint(tmp_path):
    data = dataset(n=12, seed=5, size=256)
    out, cache = tmp_path / "m", tmp_path / "cache"
    train(_args(data, out, cache, 20))
    train(_args(data, out, cache, 40, "--resume"))
    state = torch.load(out / "train_state.pt", weights_only=False)
    assert state["step"] == 40 and [h["step"] for h in state["history"]] == [20, 40]
