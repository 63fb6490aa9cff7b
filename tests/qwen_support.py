"""A tiny, randomly initialised Qwen2-VL with its own processor, saved as a local base-model directory.

Real transformers classes (Qwen2VLForConditionalGeneration, Qwen2VLProcessor) at toy size: 2 text layers of
width 64, a 2-block vision tower, a byte-level BPE tokenizer trained here on GazeX's output vocabulary, and
images capped at 8 x 8 merged patches - so the whole full-scale path (export, training, LoRA, parsing,
serving, re-fine-tuning) runs on a CPU in seconds without downloading anything.
"""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path

SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>", "<|image_pad|>",
           "<|video_pad|>"]
CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}{% for c in message['content'] %}"
    "{% if c['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif c['type'] == 'video' %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% else %}{{ c['text'] }}{% endif %}{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
CORPUS = [
    "FINDINGS: The heart is normal in size. Small left pleural effusion. No pneumothorax.",
    "IMPRESSION: Small left pleural effusion. Normal chest.",
    "visual clues : [(10,12)(30,40)(20,26),(5,6)(7,8)(6,7)] observation : [(10,12)(30,40)(20,26)]",
    "<seq>3124</seq><description>The lungs are clear.</description> 0123456789",
]
PIXELS = dict(min_pixels=28 * 28 * 4, max_pixels=28 * 28 * 64)


def _tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import Qwen2TokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=600, special_tokens=SPECIAL,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    bpe.train_from_iterator(CORPUS * 20, trainer)
    return Qwen2TokenizerFast(tokenizer_object=bpe, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                              unk_token=None)


def build_tiny_qwen2vl(out: Path, seed: int = 0) -> Path:
    import torch
    from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration, Qwen2VLImageProcessor, Qwen2VLProcessor
    from transformers.models.qwen2_vl.video_processing_qwen2_vl import Qwen2VLVideoProcessor

    tok = _tokenizer()
    processor = Qwen2VLProcessor(image_processor=Qwen2VLImageProcessor(**PIXELS), tokenizer=tok,
                                 video_processor=Qwen2VLVideoProcessor(**PIXELS), chat_template=CHAT_TEMPLATE)
    ids = {t: tok.convert_tokens_to_ids(t) for t in SPECIAL}
    special = dict(bos_token_id=ids["<|endoftext|>"], eos_token_id=ids["<|im_end|>"], pad_token_id=ids["<|endoftext|>"])
    config = Qwen2VLConfig(
        text_config=dict(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
                         rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 3, 3]},
                         **special),
        vision_config=dict(depth=2, embed_dim=32, hidden_size=64, num_heads=4, mlp_ratio=2, patch_size=14,
                           spatial_merge_size=2, temporal_patch_size=2),
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"], **special)
    torch.manual_seed(seed)
    model = Qwen2VLForConditionalGeneration(config)
    model.generation_config.eos_token_id = special["eos_token_id"]
    model.generation_config.pad_token_id = special["pad_token_id"]
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out


@functools.lru_cache(maxsize=None)
def tiny_base() -> Path:
    """One tiny base model per test session."""
    return build_tiny_qwen2vl(Path(tempfile.mkdtemp(prefix="gazex-tiny-qwen2vl-")) / "base")


def memorised_model(base: Path, records, out: Path, steps: int = 60, lr: float = 3e-3) -> Path:
    """The tiny base with every weight trained until it reproduces ``records`` (greedy), saved as a base dir.
    Full fine-tuning, because LoRA on a random 64-wide model learns too slowly for a unit test."""
    import torch
    from transformers import AutoProcessor, Qwen2VLForConditionalGeneration

    from training.qwen_train import QwenTrainParams, encode_batch

    torch.manual_seed(0)
    model = Qwen2VLForConditionalGeneration.from_pretrained(base)
    processor = AutoProcessor.from_pretrained(base)
    batch = encode_batch(processor, records, QwenTrainParams(base_model=str(base), data="", out=str(out)))
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    model.train()
    for _ in range(steps):
        model(**batch).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out
