"""``gazex finetune --backbone qwen2-vl``: one round of LoRA re-fine-tuning of the large backbone on
radiologists' corrections.

The corrected signed reviews (the same :func:`training.finetune.job.gather_examples` as gazex-tiny) become
upstream-format records: the signed report as the target of the gaze-free report task, and every final
sentence with a box as a grounding target (its observation box; no clue boxes, since a reviewer's box is
not gaze). Training continues the current adapter (or starts one on a base model) through the same loop as
``gazex train --backbone qwen2-vl``; the new adapter is registered as a candidate model version whose
parent is the version the drafts came from.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from gazex_core.checkpoint import model_identity
from gazex_core.evidence import Box
from gazex_core.imaging import load_image
from gazex_core.upstream_format import ScaledBox, format_grounding, prompt
from training.finetune.job import FinetuneInputError, gather_examples
from training.qwen_train import QwenTrainParams, train_qwen2vl
from training.sft_export import SftRecord


def _report(blocks) -> str:
    parts = []
    for section in ("findings", "impression"):
        text = " ".join(b.text for b in blocks if b.section == section and b.text)
        if text:
            parts.append(f"{section.upper()}: {text}")
    return "\n".join(parts)


def records_from_corrections(examples) -> list[SftRecord]:
    records = []
    for ex in examples:
        if not ex.corrected or not ex.image_path:
            continue
        img = load_image(ex.image_path)
        report = _report(ex.final)
        if report:
            records.append(SftRecord("report", prompt("report"), report, [ex.image_path]))
        for block in ex.final:
            if block.box is not None and block.text:
                box = ScaledBox.from_normalised(Box(block.box.x_min, block.box.y_min, block.box.x_max,
                                                    block.box.y_max), img.width, img.height)
                records.append(SftRecord("ground", prompt("ground", sentence=block.text),
                                         format_grounding([], box), [ex.image_path]))
    return records


def finetune_qwen2vl(service, model_dir: str | Path, out: str | Path, params: QwenTrainParams | None = None,
                     parent_version_id: int | None = None, log=print) -> dict:
    """Trains one round on the corrections; registers the adapter as a candidate. Returns a summary."""
    examples = gather_examples(service, parent_version_id)
    records = records_from_corrections(examples)
    if not records:
        raise FinetuneInputError("no corrected signed reviews with a readable image: nothing to train on")
    params = replace(params or QwenTrainParams(base_model=str(model_dir), data="", out=str(out)),
                     base_model=str(model_dir), init_adapter=str(model_dir), out=str(out))
    adapter = train_qwen2vl(params, records=records, log=log)
    version = service.register_model_version("gazex-qwen2-vl", Path(out).name, model_identity(adapter),
                                             parent_id=parent_version_id, path=str(adapter), status="candidate",
                                             metrics={"records": len(records),
                                                      "reviews": sum(e.corrected for e in examples)})
    return {"adapter": str(adapter), "model_version_id": version.id, "records": len(records)}
