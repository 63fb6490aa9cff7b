"""LoRA (peft) on the GazeX decoder and the SFT + DPO-style training loop.

Loss per reviewed study (documented in docs/finetune.md):

* **SFT**: next-token cross-entropy of the radiologist's final report (``<task_report>`` target, with the
  kept sentences' trajectories and the final boxes) - every signed review, corrected or not;
* **preference (DPO)**: for a review that changed something, the final report is "chosen" and the model's
  own draft "rejected": ``-log sigmoid(beta * ((log pi(chosen) - log ref(chosen)) - (log pi(rejected) -
  log ref(rejected))))`` with the frozen base model (adapter disabled) as the reference; it pushes
  probability away from exactly what the radiologist deleted/changed (e.g. an over-called finding);
* **grounding**: for every corrected or drawn box, ``<task_ground> sentence <sep>`` -> the final box.

Only the LoRA matrices train. With the default ``scope="decoder"`` the image encoder and finding head are
untouched, so image features are computed once per study and the finding head cannot regress.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from tqdm import tqdm

from gazex_core.sequence import EOS, evidence_items, ground_prompt, prompt, serialise_report

from .corrections import CorrectionExample
from .params import TARGET_SCOPES, LoraParams

def wrap_lora(model, params: LoraParams):
    """Freezes the model and adds LoRA to the attention projections of ``params.scope``."""
    from peft import LoraConfig, get_peft_model

    if params.scope not in TARGET_SCOPES:
        raise ValueError(f"scope must be one of {', '.join(TARGET_SCOPES)}, got {params.scope!r}")
    if params.rank < 1:
        raise ValueError(f"LoRA rank must be at least 1, got {params.rank}")
    config = LoraConfig(r=params.rank, lora_alpha=params.alpha, lora_dropout=params.dropout,
                        target_modules=TARGET_SCOPES[params.scope], bias="none")
    return get_peft_model(model, config)


# ------------------------------------------------------------------ encoding


@dataclass
class EncodedExample:
    index: int  # into the image list
    chosen: tuple[list[int], list[int]]
    rejected: tuple[list[int], list[int]] | None
    grounds: list[tuple[list[int], list[int]]]


def encode(tok, prompt_items: list[str], target_items: list[str], max_len: int) -> tuple[list[int], list[int]]:
    p, t = tok.encode(prompt_items), tok.encode(target_items)
    ids = (p + t)[:max_len]
    return ids, ([-100] * len(p) + t)[:max_len]


def encode_examples(examples: list[CorrectionExample], tok, max_len: int, use_gaze: bool = True) -> list[EncodedExample]:
    out = []
    for i, ex in enumerate(examples):
        chosen = encode(tok, prompt("report"), serialise_report(ex.final, with_clues=use_gaze), max_len)
        rejected = None
        if ex.corrected:
            rejected = encode(tok, prompt("report"), serialise_report(ex.draft, with_clues=use_gaze), max_len)
            if rejected[0] == chosen[0]:
                rejected = None
        grounds = [encode(tok, ground_prompt(b.text), evidence_items(b, with_clues=use_gaze) + [EOS], max_len)
                   for b in _boxed_corrections(ex)]
        out.append(EncodedExample(i, chosen, rejected, grounds))
    return out


def _boxed_corrections(ex: CorrectionExample):
    changed = {c.sentence_text for c in ex.box_changes}
    return [b for b in ex.final if b.text in changed]


def _pad(seqs: list[list[int]], value: int) -> torch.Tensor:
    n = max(len(s) for s in seqs)
    return torch.tensor([s + [value] * (n - len(s)) for s in seqs], dtype=torch.long)


def sequence_logprobs(model, memory: torch.Tensor, pairs: list[tuple[list[int], list[int]]],
                      pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per row: (sum of target-token log-probs, number of target tokens)."""
    ids = _pad([p[0] for p in pairs], pad_id)
    labels = _pad([p[1] for p in pairs], -100)
    logits = model.decode(ids, memory=memory)[:, :-1]
    target = labels[:, 1:]
    mask = target != -100
    logp = torch.gather(F.log_softmax(logits.float(), -1), 2, target.clamp(min=0)[..., None])[..., 0]
    return (logp * mask).sum(1), mask.sum(1)


# ------------------------------------------------------------------ training


class LoraTrainer:
    """Trains the LoRA matrices of a peft-wrapped GazeX on encoded correction examples."""

    def __init__(self, peft_model, tok, pixels: torch.Tensor, data: list[EncodedExample], params: LoraParams):
        self.model, self.tok, self.pixels, self.data, self.params = peft_model, tok, pixels, data, params
        self.inner = peft_model.get_base_model()
        self.cache_memory = params.scope.startswith("decoder")  # the image encoder is frozen: encode once
        self.memory = self._encode_all() if self.cache_memory else None
        self.ref = self._reference_logprobs()

    def _memory(self, indices: list[int], grad: bool) -> torch.Tensor:
        if self.memory is not None:
            return self.memory[indices]
        with torch.set_grad_enabled(grad):
            return self.inner.encode(self.pixels[indices])[0]

    @torch.no_grad()
    def _encode_all(self) -> torch.Tensor:
        self.inner.eval()
        chunks = [self.inner.encode(self.pixels[s:s + 64])[0] for s in range(0, len(self.pixels), 64)]
        return torch.cat(chunks)

    @torch.no_grad()
    def _reference_logprobs(self) -> dict[int, tuple[float, float]]:
        """log ref(chosen), log ref(rejected) under the base model (adapter disabled), once."""
        ref: dict[int, tuple[float, float]] = {}
        pairs = [d for d in self.data if d.rejected is not None]
        self.model.eval()
        with self.model.disable_adapter():
            for s in range(0, len(pairs), 16):
                chunk = pairs[s:s + 16]
                memory = self._memory([d.index for d in chunk], grad=False)
                lc, _ = sequence_logprobs(self.inner, memory, [d.chosen for d in chunk], self.tok.pad_id)
                lr, _ = sequence_logprobs(self.inner, memory, [d.rejected for d in chunk], self.tok.pad_id)
                for d, c, r in zip(chunk, lc.tolist(), lr.tolist()):
                    ref[d.index] = (c, r)
        return ref

    def steps_per_epoch(self) -> int:
        return max(1, -(-len(self.data) // self.params.batch_size))

    def train(self, on_step: Callable[[int, int, dict], None] | None = None,
              on_epoch: Callable[[int], None] | None = None) -> list[dict]:
        p = self.params
        torch.manual_seed(p.seed)
        rng = random.Random(p.seed)
        trainable = [x for x in self.model.parameters() if x.requires_grad]
        opt = torch.optim.AdamW(trainable, lr=p.lr, weight_decay=0.0)
        total = self.steps_per_epoch() * p.epochs
        history: list[dict] = []
        bar = tqdm(total=total, desc="finetune", unit="step")
        step = 0
        for _ in range(p.epochs):
            order = list(range(len(self.data)))
            rng.shuffle(order)
            for s in range(0, len(order), p.batch_size):
                for g in opt.param_groups:
                    g["lr"] = p.lr * (1 - step / total) if step > 0 else p.lr
                batch = [self.data[i] for i in order[s:s + p.batch_size]]
                self.model.train()
                loss, parts = self.loss(batch)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(trainable, 1.0)
                opt.step()
                step += 1
                history.append({"step": step, **parts})
                bar.update(1)
                bar.set_postfix(loss=f"{parts['loss']:.3f}", sft=f"{parts['sft']:.3f}", dpo=f"{parts['dpo']:.3f}")
                if on_step is not None:
                    on_step(step, total, parts)
            if on_epoch is not None:
                self.model.eval()
                on_epoch(len(history) // self.steps_per_epoch())
        bar.close()
        self.model.eval()
        return history

    def loss(self, batch: list[EncodedExample]) -> tuple[torch.Tensor, dict]:
        p = self.params
        memory = self._memory([d.index for d in batch], grad=True)
        lc, nc = sequence_logprobs(self.inner, memory, [d.chosen for d in batch], self.tok.pad_id)
        sft = -(lc.sum() / nc.sum().clamp(min=1))
        total, dpo, ground = sft, torch.zeros(()), torch.zeros(())
        paired = [i for i, d in enumerate(batch) if d.rejected is not None]
        if paired and p.dpo_weight > 0:
            lr, _ = sequence_logprobs(self.inner, memory[paired], [batch[i].rejected for i in paired], self.tok.pad_id)
            ref = torch.tensor([self.ref[batch[i].index] for i in paired])
            margin = (lc[paired] - ref[:, 0]) - (lr - ref[:, 1])
            dpo = -F.logsigmoid(p.dpo_beta * margin).mean()
            total = total + p.dpo_weight * dpo
        grounds = [(i, g) for i, d in enumerate(batch) for g in d.grounds]
        if grounds and p.ground_weight > 0:
            lg, ng = sequence_logprobs(self.inner, memory[[i for i, _ in grounds]], [g for _, g in grounds],
                                       self.tok.pad_id)
            ground = -(lg.sum() / ng.sum().clamp(min=1))
            total = total + p.ground_weight * ground
        return total, {"loss": total.item(), "sft": sft.item(), "dpo": dpo.item(), "ground": ground.item()}


def save_adapter(peft_model, out: Path) -> Path:
    """adapter_config.json + adapter_model.safetensors (the LoRA matrices only)."""
    peft_model.save_pretrained(str(out), safe_serialization=True)
    return out
