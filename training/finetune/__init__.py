"""Re-fine-tuning GazeX on radiologists' corrections (LoRA with peft).

corrections  signed reviews (annotations_db) -> training examples (final report blocks + the rejected draft)
modelio      model/image loading, batched greedy report generation, blocks <-> EvidenceBundle
lora         LoRA wrapping, the SFT + DPO-style training loop, adapter saving
metrics      base vs adapted: correction metrics on held-out reviews + the fixed synthetic regression benchmark
job          one `gazex finetune` run: frozen split, status row + heartbeat, signals, registry, promotion gate
cli          `gazex finetune` and `gazex models list|promote|rollback`
See docs/finetune.md.
"""
