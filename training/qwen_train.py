"""``gazex train --backbone qwen2-vl``: LoRA fine-tuning of Qwen2-VL on the GazeX ShareGPT tasks.

    gazex export-sft --data /data/reflacx --kind reflacx --out /data/gazex-sft
    gazex train --backbone qwen2-vl --base-model /models/Qwen2-VL-2B-Instruct --data /data/gazex-sft --out runs/q
    accelerate launch --config_file docs/accelerate/multi_gpu.yaml -m training.cli train --backbone qwen2-vl ...

One loop, run through Hugging Face accelerate: one process per GPU (DDP, or DeepSpeed ZeRO-2 through the
accelerate config), bf16 on GPUs, gradient checkpointing, gradient accumulation. Every ``save_every`` steps
the full training state goes to ``OUT/checkpoints/last`` (accelerate's ``save_state``); ``--resume`` picks
it up and skips the steps already done. The result is a LoRA adapter directory (peft files +
``gazex_backbone.json`` naming the base), which :class:`gazex_core.qwen2vl.Qwen2VLGazeX`, the app and
``gazex finetune --backbone qwen2-vl`` load.

Labels are the assistant turn only: the prompt (with its expanded image/video tokens) is masked with -100.
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from gazex_core.qwen2vl import BACKBONE, BACKBONE_META, load_qwen2vl, resolve_base, to_rgb_uint8, user_messages

IGNORE = -100
DEFAULT_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj")


@dataclass
class QwenTrainParams:
    base_model: str
    data: str  # an export-sft directory or its gazex_sft.json
    out: str
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    target_modules: tuple[str, ...] = DEFAULT_TARGETS
    lr: float = 1e-4
    epochs: int = 1
    steps: int = 0  # total optimiser steps; overrides epochs
    batch_size: int = 1  # per device
    grad_accum: int = 1
    max_len: int = 2048  # upstream cutoff_len
    max_image_side: int = 768
    max_frames: int = 128
    bf16: bool = True  # on GPUs
    gradient_checkpointing: bool = True
    save_every: int = 200
    seed: int = 0
    resume: bool = False
    tasks: tuple[str, ...] = ()  # empty: every task in the file
    allow_download: bool = False
    init_adapter: str | None = None  # continue an existing adapter (re-fine-tuning)
    extra: dict = field(default_factory=dict)


# --- batches --------------------------------------------------------------------------------------


def _frames(path: str, max_frames: int) -> list[np.ndarray]:
    from training.sft_export import read_video

    frames = read_video(path)[:max_frames]
    if len(frames) % 2:  # Qwen2-VL merges frames in temporal pairs
        frames.append(frames[-1])
    return frames


def encode_batch(processor, records, params: QwenTrainParams) -> dict:
    """SftRecords -> model inputs with labels on the assistant tokens only (right-padded)."""
    import torch

    tok = processor.tokenizer
    prompts, images, videos = [], [], []
    for rec in records:
        prompts.append(processor.apply_chat_template(user_messages(rec.user), tokenize=False,
                                                     add_generation_prompt=True))
        images += [to_rgb_uint8(p, params.max_image_side)[0] for p in rec.images]
        videos += [_frames(p, params.max_frames) for p in rec.videos]
    tok.padding_side = "right"
    enc = processor(text=prompts, images=images or None, videos=videos or None, padding=False, return_tensors=None)
    end = tok.convert_tokens_to_ids("<|im_end|>")
    rows, labels = [], []
    for prompt_ids, rec in zip(enc["input_ids"], records):
        target = tok(rec.assistant, add_special_tokens=False)["input_ids"] + [end]
        ids = (list(prompt_ids) + target)[:params.max_len]
        rows.append(ids)
        labels.append(([IGNORE] * len(prompt_ids) + target)[:params.max_len])
    width = max(len(r) for r in rows)
    pad = tok.pad_token_id
    batch = {
        "input_ids": torch.tensor([r + [pad] * (width - len(r)) for r in rows]),
        "attention_mask": torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows]),
        "labels": torch.tensor([lab + [IGNORE] * (width - len(lab)) for lab in labels]),
    }
    if "mm_token_type_ids" in enc:
        batch["mm_token_type_ids"] = torch.tensor([list(m) + [0] * (width - len(m)) for m in enc["mm_token_type_ids"]])
    for key in ("pixel_values", "image_grid_thw", "pixel_values_videos", "video_grid_thw"):
        if key in enc and enc[key] is not None:
            batch[key] = torch.as_tensor(np.asarray(enc[key]))
    return batch


# --- model ----------------------------------------------------------------------------------------


def lora_model(params: QwenTrainParams, device: str):
    """Base (frozen) + trainable LoRA: a new adapter, or ``init_adapter`` continued."""
    from peft import LoraConfig, PeftModel, get_peft_model

    base, adapter = resolve_base(params.init_adapter or params.base_model)
    model, processor, _, _ = load_qwen2vl(base, device=device, allow_download=params.allow_download)
    if adapter is not None:
        model = PeftModel.from_pretrained(model, adapter, is_trainable=True)
    else:
        config = LoraConfig(r=params.lora_r, lora_alpha=params.lora_alpha, lora_dropout=params.lora_dropout,
                            target_modules=list(params.target_modules), task_type="CAUSAL_LM")
        model = get_peft_model(model, config)
    if params.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    model.train()
    return model, processor, base


def save_adapter(model, base: Path, out: Path, params: QwenTrainParams, history: list[dict]) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    meta = {"backbone": BACKBONE, "base_model": str(Path(base).resolve()), "params": _jsonable(params),
            "history": history[-50:]}
    (out / BACKBONE_META).write_text(json.dumps(meta, indent=2))
    return out


def _jsonable(params: QwenTrainParams) -> dict:
    d = asdict(params)
    d["target_modules"] = list(d["target_modules"])
    d["tasks"] = list(d["tasks"])
    return d


# --- loop -----------------------------------------------------------------------------------------


def load_records(params: QwenTrainParams):
    from training.sft_export import read_sharegpt

    records = read_sharegpt(params.data)
    if params.tasks:
        records = [r for r in records if r.task in params.tasks]
    if not records:
        raise ValueError(f"{params.data}: no training records{' for tasks ' + ','.join(params.tasks) if params.tasks else ''}")
    return records


def train_qwen2vl(params: QwenTrainParams, records=None, log=print) -> Path:
    """Trains the LoRA adapter; returns its directory (``params.out``)."""
    import torch
    from accelerate import Accelerator
    from accelerate.utils import set_seed
    from tqdm import tqdm

    records = records if records is not None else load_records(params)
    cuda = torch.cuda.is_available()
    accelerator = Accelerator(mixed_precision="bf16" if (cuda and params.bf16) else "no",
                              gradient_accumulation_steps=params.grad_accum, cpu=not cuda)
    set_seed(params.seed)
    model, processor, base = lora_model(params, "cpu")
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=params.lr)
    order = list(range(len(records)))
    random.Random(params.seed).shuffle(order)
    batches = [order[i:i + params.batch_size] for i in range(0, len(order), params.batch_size)]
    per_epoch = max(1, math.ceil(len(batches) / params.grad_accum))
    total = params.steps or per_epoch * params.epochs
    model, optimizer = accelerator.prepare(model, optimizer)
    out = Path(params.out)
    state_dir = out / "checkpoints" / "last"
    done = _resume(accelerator, state_dir) if params.resume else 0
    history: list[dict] = []
    micro = done * params.grad_accum
    bar = tqdm(total=total, initial=done, desc="train qwen2-vl", unit="step", disable=not accelerator.is_main_process)
    while done < total:
        idx = batches[(micro * accelerator.num_processes + accelerator.process_index) % len(batches)]
        batch = {k: v.to(accelerator.device) for k, v in encode_batch(processor, [records[i] for i in idx], params).items()}
        with accelerator.accumulate(model):
            loss = model(**batch).loss
            accelerator.backward(loss)
            optimizer.step()
            optimizer.zero_grad()
        micro += 1
        if accelerator.sync_gradients:
            done += 1
            history.append({"step": done, "loss": float(loss.detach())})
            bar.update(1)
            bar.set_postfix(loss=f"{history[-1]['loss']:.3f}")
            if params.save_every and done % params.save_every == 0:
                _save_state(accelerator, state_dir, done)
    bar.close()
    _save_state(accelerator, state_dir, done)
    if accelerator.is_main_process:
        save_adapter(accelerator.unwrap_model(model), base, out, params, history)
        log(f"saved adapter {out} after {done} steps (last loss {history[-1]['loss'] if history else float('nan'):.4f})")
    accelerator.wait_for_everyone()
    return out


def _save_state(accelerator, state_dir: Path, step: int) -> None:
    accelerator.save_state(str(state_dir))
    if accelerator.is_main_process:
        (state_dir / "step.json").write_text(json.dumps({"step": step}))


def _resume(accelerator, state_dir: Path) -> int:
    if not (state_dir / "step.json").is_file():
        return 0
    accelerator.load_state(str(state_dir))
    return int(json.loads((state_dir / "step.json").read_text())["step"])


def params_from_args(args) -> QwenTrainParams:
    if not args.base_model:
        raise ValueError("--backbone qwen2-vl needs --base-model PATH (a local Qwen2-VL directory)")
    return QwenTrainParams(base_model=args.base_model, data=args.data, out=args.out, lora_r=args.lora_r,
                           lora_alpha=args.lora_alpha, lr=args.qwen_lr,
                           epochs=args.epochs, steps=args.steps, batch_size=args.qwen_batch_size,
                           grad_accum=args.grad_accum, bf16=not args.no_bf16,
                           gradient_checkpointing=not args.no_gradient_checkpointing, save_every=args.save_every,
                           seed=args.seed, resume=args.resume, allow_download=args.allow_download,
                           tasks=tuple(args.sft_tasks.split(",")) if args.sft_tasks else ())


def add_arguments(p) -> None:
    """Options of ``gazex train`` that only the qwen2-vl backbone reads."""
    g = p.add_argument_group("qwen2-vl backbone (--backbone qwen2-vl)")
    g.add_argument("--base-model", default=None, help="local Qwen2-VL directory (never downloaded implicitly)")
    g.add_argument("--allow-download", action="store_true", help="let transformers fetch a missing base model")
    g.add_argument("--lora-r", type=int, default=8)
    g.add_argument("--qwen-lr", type=float, default=1e-4, help="LoRA learning rate")
    g.add_argument("--lora-alpha", type=int, default=16)
    g.add_argument("--qwen-batch-size", type=int, default=1, help="records per device per micro-step")
    g.add_argument("--grad-accum", type=int, default=8)
    g.add_argument("--save-every", type=int, default=200)
    g.add_argument("--no-bf16", action="store_true")
    g.add_argument("--no-gradient-checkpointing", action="store_true")
    g.add_argument("--sft-tasks", default=None, help="train only these tasks (comma-separated)")
