"""GPU check for the full-scale backbone (issue 13): a short LoRA run on synthetic studies, drafting
throughput and peak GPU memory, printed as a table. Meant to finish in under 10 minutes on one GPU.

    python benchmarks/bench_qwen2vl_gpu.py --base-model /models/Qwen2-VL-2B-Instruct
    python benchmarks/bench_qwen2vl_gpu.py --tiny          # the tests' tiny random Qwen2-VL (CPU smoke run)

Steps: synthesise N studies (512 px) -> export-sft -> `--steps` LoRA steps (bf16 on CUDA, gradient
checkpointing) -> draft `--draft-n` studies with the trained adapter in batches of `--draft-batch`.
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--base-model", default=None)
    p.add_argument("--tiny", action="store_true", help="build the tests' tiny random Qwen2-VL instead")
    p.add_argument("--studies", type=int, default=24)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--grad-accum", type=int, default=4)
    p.add_argument("--draft-n", type=int, default=16)
    p.add_argument("--draft-batch", type=int, default=8)
    p.add_argument("--max-new-tokens", type=int, default=256)
    p.add_argument("--work", default=None, help="work directory (default: a temporary one)")
    args = p.parse_args()
    if not args.base_model and not args.tiny:
        p.error("give --base-model PATH or --tiny")

    import torch

    from gazex_core.qwen2vl import GenerationSettings, Qwen2VLGazeX
    from training.data.loaders import load_dataset
    from training.qwen_train import QwenTrainParams, train_qwen2vl
    from training.sft_export import export_sharegpt
    from training.synth import generate

    work = Path(args.work or tempfile.mkdtemp(prefix="bench-qwen2vl-"))
    cuda = torch.cuda.is_available()
    device = "cuda" if cuda else "cpu"
    base = args.base_model
    if args.tiny:
        from qwen_support import build_tiny_qwen2vl

        base = str(build_tiny_qwen2vl(work / "tiny-base"))
    rows: list[tuple[str, str]] = []

    t = time.perf_counter()
    data = generate(args.studies, work / "synth", seed=2026, size=512, workers=1, progress=False)
    summary = export_sharegpt(load_dataset("synthetic", data).studies, work / "sft")
    rows.append(("synthesise + export-sft", f"{time.perf_counter() - t:.1f} s, {summary['records']} records"))

    if cuda:
        torch.cuda.reset_peak_memory_stats()
    t = time.perf_counter()
    params = QwenTrainParams(base_model=base, data=str(work / "sft"), out=str(work / "adapter"), steps=args.steps,
                             grad_accum=args.grad_accum, save_every=0)
    train_qwen2vl(params, log=lambda *_: None)
    train_s = time.perf_counter() - t
    rows.append(("LoRA training", f"{args.steps} steps x {args.grad_accum} records in {train_s:.1f} s "
                                  f"({args.steps * args.grad_accum / train_s:.2f} records/s)"))
    if cuda:
        rows.append(("peak GPU memory, training", f"{torch.cuda.max_memory_allocated() / 2**30:.2f} GiB"))
        torch.cuda.reset_peak_memory_stats()

    gx = Qwen2VLGazeX(work / "adapter", device=device, settings=GenerationSettings(max_new_tokens=args.max_new_tokens))
    images = [s.image_path for s in load_dataset("synthetic", data).studies][:args.draft_n]
    t = time.perf_counter()
    bundles = gx.analyze_many(images, batch_size=args.draft_batch)
    draft_s = time.perf_counter() - t
    rows.append(("drafting (report + grounding per sentence)",
                 f"{len(bundles)} studies in {draft_s:.1f} s = {len(bundles) / draft_s:.3f} studies/s "
                 f"(batch {args.draft_batch}, {sum(len(b.sentences) for b in bundles)} sentences)"))
    if cuda:
        rows.append(("peak GPU memory, drafting", f"{torch.cuda.max_memory_allocated() / 2**30:.2f} GiB"))

    gpu = torch.cuda.get_device_name(0) if cuda else "none (CPU)"
    print(f"\nmachine: {platform.node()}, GPU: {gpu}, torch {torch.__version__}, base: {base}\n")
    print("| step | result |\n|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
