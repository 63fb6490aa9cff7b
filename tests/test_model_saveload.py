"""save_pretrained / from_pretrained round trip (safetensors), fp32 and fp16 storage; LoRA-targetable names."""

from __future__ import annotations

import torch

from gazex_core.model import GazeXConfig, GazeXModel, init_model


def tiny_config(**kw) -> GazeXConfig:
    return GazeXConfig(vocab_size=300, image_size=64, stem_channels=(8, 16, 16), d_model=32, n_heads=2,
                       n_encoder_layers=1, n_decoder_layers=2, max_positions=64, **kw)


def test_round_trip_is_exact_in_fp32(tmp_path):
    model = init_model(tiny_config(), seed=3).eval()
    model.save_pretrained(tmp_path, safe_serialization=True)
    assert (tmp_path / "model.safetensors").exists()
    loaded = GazeXModel.from_pretrained(tmp_path).eval()
    a, b = model.state_dict(), loaded.state_dict()
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    x = torch.rand(2, 1, 64, 64)
    ids = torch.randint(0, 300, (2, 10))
    with torch.no_grad():
        assert torch.equal(model(x, ids).logits, loaded(x, ids).logits)
        mem, _ = model.encode(x[:1])
        assert model.generate_greedy(mem, ids[:1, :3], 8)[0] == loaded.generate_greedy(mem, ids[:1, :3], 8)[0]


def test_fp16_storage_loads_as_fp32_and_matches(tmp_path):
    model = init_model(tiny_config(finding_thresholds=[0.3] * 14), seed=4).eval()
    model.half().save_pretrained(tmp_path)
    model.float()
    loaded = GazeXModel.from_pretrained(tmp_path, dtype=torch.float32).eval()
    assert loaded.config.finding_thresholds == [0.3] * 14
    assert next(loaded.parameters()).dtype == torch.float32
    x = torch.rand(1, 1, 64, 64)
    with torch.no_grad():
        assert torch.allclose(model.encode(x)[1], loaded.encode(x)[1], atol=2e-2)


def test_kv_cache_decoding_matches_full_forward():
    model = init_model(tiny_config(), seed=5).eval()
    x = torch.rand(1, 1, 64, 64)
    prompt = torch.tensor([[1, 7, 9]])
    with torch.no_grad():
        mem, _ = model.encode(x)
        out, _ = model.generate_greedy(mem, prompt, 12)
        seq = prompt
        for _ in range(len(out[0])):  # greedy without a cache, one full forward per token
            nxt = model.decode(seq, memory=mem)[:, -1].argmax(-1, keepdim=True)
            seq = torch.cat([seq, nxt], 1)
    assert seq[0, 3:].tolist() == out[0]


def test_lora_target_modules_exist():
    model = init_model(tiny_config())
    names = {n.split(".")[-1] for n, _ in model.named_modules()}
    assert {"q_proj", "k_proj", "v_proj", "o_proj", "up_proj", "down_proj"} <= names
    from peft import LoraConfig, get_peft_model

    peft_model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    trainable = sum(p.numel() for p in peft_model.parameters() if p.requires_grad)
    assert 0 < trainable < sum(p.numel() for p in peft_model.parameters()) / 5
