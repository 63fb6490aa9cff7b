"""The GazeX model in one file: a small conv+transformer image encoder, a GPT-style text decoder with
cross-attention, and a multi-label finding head.

    image (1 x S x S, grey 0-1)
      -> ConvStem (4 stride-2 residual stages)             -> (S/16)^2 patch features
      -> + learned 2-D positions -> n_encoder_layers x EncoderLayer (pre-LN self-attention + MLP)
      = memory (B, P, d)
    FindingHead: one learned query per CheXpert label attends the memory -> 14 logits (sigmoid = probability)
    AttributeHead (optional, ``config.attribute_head``): the same per-label queries -> severity logits
             (small / moderate / large) and side logits (left, right: each present or not) per label
    SecondLook (optional, ``config.second_look``): the same image at a larger size (256), its own conv stem and
             per-label queries -> per label a finding logit, severity and side logits and a box per side slot;
             ``read_image`` takes, label by label, what the config says it does better (chosen on validation)
    GazeHead (optional, ``config.gaze_head``): a few learned queries per ABCDEF region attend the memory -> the
             points where readers look for that region on this study (normal statements' trajectories)
    Decoder: token + position embedding -> n_decoder_layers x DecoderLayer
             (causal self-attention, cross-attention to memory, MLP) -> LayerNorm -> lm_head (tied)

Attention projections are named ``q_proj, k_proj, v_proj, o_proj`` and MLP projections ``up_proj, down_proj``
so peft LoRA can target them (``target_modules=["q_proj", "v_proj"]`` etc.).

Loss = next-token cross-entropy on the target tokens (labels = -100 on the prompt and padding)
+ ``finding_loss_weight`` x BCE of the finding head. The attribute head is trained afterwards on the frozen
encoder (``gazex train-heads``, training/attribute_head.py), the second look beside the frozen model
(``gazex train-second-look``, training/second_look.py), the gaze head on the frozen encoder (``gazex
train-gaze-head``, training/gaze_head.py); a config without ``attribute_head`` / ``second_look`` / ``gaze_head`` has
none, so older checkpoints and adapters load unchanged.

Saved as a Hugging Face-style directory (``config.json`` + ``model.safetensors``, the tied ``lm_head`` stored
once) by plain torch + safetensors: importing transformers costs more than importing torch, and a cold
``gazex analyze`` should not pay it. peft wraps the model as any ``nn.Module``.

Greedy decoding uses a KV cache (self-attention keys/values grow per step, cross-attention keys/values
are computed once per image); ``generate`` takes an optional ``logits_hook`` for constrained decoding.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from .vocab import CHEXPERT_LABELS


CONFIG_FILE, WEIGHTS_FILE = "config.json", "model.safetensors"
SEVERITIES = ("small", "moderate", "large")  # the attribute head's severity classes, in logit order
SIDES = ("left", "right")  # the attribute head's side logits, in order
BOX_SLOTS = ("left", "right", "other")  # the second look's boxes per label: a left, a right, and a midline / bilateral one
TIED_WEIGHTS = {"lm_head.weight": "embed_tokens.weight"}  # stored once, under the embedding's name


class GazeXConfig:
    """The model's hyper-parameters; any other keyword (``model_version``, ``training`` ...) is kept as an
    attribute and saved with them."""

    model_type = "gazex"

    def __init__(
        self,
        vocab_size: int = 1024,
        image_size: int = 128,
        stem_channels: tuple[int, ...] = (16, 32, 64),
        d_model: int = 128,
        n_heads: int = 4,
        n_encoder_layers: int = 2,
        n_decoder_layers: int = 3,
        mlp_ratio: int = 4,
        max_positions: int = 320,
        n_labels: int = len(CHEXPERT_LABELS),
        label_names: list[str] | None = None,
        dropout: float = 0.1,
        finding_loss_weight: float = 1.0,
        use_gaze: bool = True,
        finding_thresholds: list[float] | None = None,
        attribute_head: dict | None = None,
        second_look: dict | None = None,
        gaze_head: dict | None = None,
        pad_token_id: int = 0,
        bos_token_id: int = 1,
        eos_token_id: int = 2,
        **kwargs,
    ):
        self.vocab_size = vocab_size
        self.image_size = image_size
        self.stem_channels = list(stem_channels)
        self.d_model = d_model
        self.n_heads = n_heads
        self.n_encoder_layers = n_encoder_layers
        self.n_decoder_layers = n_decoder_layers
        self.mlp_ratio = mlp_ratio
        self.max_positions = max_positions
        self.n_labels = n_labels
        self.label_names = list(label_names or CHEXPERT_LABELS)
        self.dropout = dropout
        self.finding_loss_weight = finding_loss_weight
        self.use_gaze = use_gaze  # False = the gaze ablation (no trajectory tokens, no ordering task)
        # per-label decision thresholds on the finding head (calibrated on validation after training)
        self.finding_thresholds = list(finding_thresholds) if finding_thresholds else [0.5] * n_labels
        # None: no attribute head; else {"severity_labels": [...], "side_labels": [...]}, the labels it was trained for
        self.attribute_head = attribute_head
        # None: no second look; else {"image_size", "channels", ...} and which labels' finding probability, severity
        # and side it gives ("finding_labels", "severity_labels", "side_labels", chosen on validation)
        self.second_look = second_look
        # None: no gaze head; else {"points": K, "regions": [...], "training": {...}}
        self.gaze_head = gaze_head
        self.pad_token_id, self.bos_token_id, self.eos_token_id = pad_token_id, bos_token_id, eos_token_id
        kwargs.pop("model_type", None)
        kwargs.setdefault("tie_word_embeddings", True)
        for key, value in kwargs.items():
            setattr(self, key, value)

    def to_dict(self) -> dict:
        return {"model_type": self.model_type, **self.__dict__}

    @classmethod
    def from_json_file(cls, path: str | Path) -> GazeXConfig:
        return cls(**json.loads(Path(path).read_text()))

    @property
    def grid(self) -> int:
        return self.image_size // 16

    @property
    def head_thresholds(self) -> list[float]:
        """The finding head's own thresholds: with a second look, ``finding_thresholds`` are those of the combined
        reading and the head's are kept in ``second_look["base_finding_thresholds"]``."""
        return list((self.second_look or {}).get("base_finding_thresholds") or self.finding_thresholds)


# ------------------------------------------------------------------ building blocks


class Attention(nn.Module):
    """Multi-head attention (self or cross) with an optional KV cache."""

    def __init__(self, d: int, n_heads: int, dropout: float):
        super().__init__()
        self.n_heads, self.head_dim = n_heads, d // n_heads
        self.q_proj = nn.Linear(d, d)
        self.k_proj = nn.Linear(d, d)
        self.v_proj = nn.Linear(d, d)
        self.o_proj = nn.Linear(d, d)
        self.dropout = dropout

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        return x.view(b, t, self.n_heads, self.head_dim).transpose(1, 2)

    def kv(self, source: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self._split(self.k_proj(source)), self._split(self.v_proj(source))

    def forward(
        self,
        x: torch.Tensor,
        source: torch.Tensor | None = None,
        causal: bool = False,
        kv: tuple[torch.Tensor, torch.Tensor] | None = None,
        cache: dict | None = None,
    ) -> torch.Tensor:
        q = self._split(self.q_proj(x))
        if kv is None:
            k, v = self.kv(x if source is None else source)
        else:
            k, v = kv
        if cache is not None:  # incremental self-attention: append this step's keys/values
            if "k" in cache:
                k = torch.cat([cache["k"], k], dim=2)
                v = torch.cat([cache["v"], v], dim=2)
            cache["k"], cache["v"] = k, v
        is_causal = causal and q.shape[2] > 1 and q.shape[2] == k.shape[2]
        if causal and q.shape[2] > 1 and q.shape[2] != k.shape[2]:  # prompt chunk after a cache: offset causal mask
            t_q, t_k = q.shape[2], k.shape[2]
            mask = torch.ones(t_q, t_k, dtype=torch.bool, device=x.device).tril(t_k - t_q)
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        else:
            out = F.scaled_dot_product_attention(
                q, k, v, is_causal=is_causal, dropout_p=self.dropout if self.training else 0.0
            )
        b, h, t, hd = out.shape
        return self.o_proj(out.transpose(1, 2).reshape(b, t, h * hd))


class MLP(nn.Module):
    def __init__(self, d: int, ratio: int, dropout: float):
        super().__init__()
        self.up_proj = nn.Linear(d, d * ratio)
        self.down_proj = nn.Linear(d * ratio, d)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.down_proj(F.gelu(self.up_proj(x))))


class EncoderLayer(nn.Module):
    def __init__(self, cfg: GazeXConfig):
        super().__init__()
        self.ln1 = nn.LayerNorm(cfg.d_model)
        self.self_attn = Attention(cfg.d_model, cfg.n_heads, cfg.dropout)
        self.ln2 = nn.LayerNorm(cfg.d_model)
        self.mlp = MLP(cfg.d_model, cfg.mlp_ratio, cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.self_attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class DecoderLayer(nn.Module):
    def __init__(self, cfg: GazeXConfig):
        super().__init__()
        self.ln1 = nn.LayerNorm(cfg.d_model)
        self.self_attn = Attention(cfg.d_model, cfg.n_heads, cfg.dropout)
        self.ln2 = nn.LayerNorm(cfg.d_model)
        self.cross_attn = Attention(cfg.d_model, cfg.n_heads, cfg.dropout)
        self.ln3 = nn.LayerNorm(cfg.d_model)
        self.mlp = MLP(cfg.d_model, cfg.mlp_ratio, cfg.dropout)

    def forward(self, x, memory=None, cross_kv=None, cache=None):
        x = x + self.self_attn(self.ln1(x), causal=True, cache=cache)
        x = x + self.cross_attn(self.ln2(x), source=memory, kv=cross_kv)
        return x + self.mlp(self.ln3(x))


class ResStage(nn.Module):
    """stride-2 conv + a residual 3x3 conv block, BatchNorm + GELU."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.down = nn.Sequential(nn.Conv2d(cin, cout, 3, 2, 1, bias=False), nn.BatchNorm2d(cout), nn.GELU())
        self.block = nn.Sequential(
            nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout), nn.GELU(),
            nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.down(x)
        return F.gelu(x + self.block(x))


class ImageEncoder(nn.Module):
    def __init__(self, cfg: GazeXConfig):
        super().__init__()
        chans = [1, *cfg.stem_channels, cfg.d_model]
        self.stages = nn.Sequential(*[ResStage(chans[i], chans[i + 1]) for i in range(len(chans) - 1)])
        self.pos = nn.Parameter(torch.zeros(1, cfg.grid * cfg.grid, cfg.d_model))
        self.layers = nn.ModuleList([EncoderLayer(cfg) for _ in range(cfg.n_encoder_layers)])
        self.ln = nn.LayerNorm(cfg.d_model)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        x = self.stages((pixel_values - 0.5) / 0.25)  # (B, d, g, g)
        x = x.flatten(2).transpose(1, 2) + self.pos
        for layer in self.layers:
            x = layer(x)
        return self.ln(x)


class FindingHead(nn.Module):
    """One learned query per label attends the image memory; a shared linear gives its logit."""

    def __init__(self, cfg: GazeXConfig):
        super().__init__()
        self.queries = nn.Parameter(torch.randn(1, cfg.n_labels, cfg.d_model) * 0.02)
        self.attn = Attention(cfg.d_model, cfg.n_heads, 0.0)
        self.ln = nn.LayerNorm(cfg.d_model)
        self.out = nn.Linear(cfg.d_model, 1)

    def forward(self, memory: torch.Tensor) -> torch.Tensor:
        q = self.queries.expand(memory.shape[0], -1, -1)
        h = self.ln(q + self.attn(q, source=memory))
        return self.out(h).squeeze(-1)


class AttributeHead(nn.Module):
    """Severity and side of each label, read from the image memory: one learned query per label (initialised
    from the finding head's, which already attend to the right place) attends the memory; an MLP, then a
    linear gives 3 severity logits (SEVERITIES, softmax) and 2 side logits (SIDES, each a sigmoid)."""

    def __init__(self, cfg: GazeXConfig):
        super().__init__()
        self.queries = nn.Parameter(torch.randn(1, cfg.n_labels, cfg.d_model) * 0.02)
        self.attn = Attention(cfg.d_model, cfg.n_heads, 0.0)
        self.ln = nn.LayerNorm(cfg.d_model)
        self.mlp = MLP(cfg.d_model, 2, 0.0)
        self.out = nn.Linear(cfg.d_model, len(SEVERITIES) + len(SIDES))

    def forward(self, memory: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """memory (B, P, d) -> (severity logits (B, n_labels, 3), side logits (B, n_labels, 2))."""
        q = self.queries.expand(memory.shape[0], -1, -1)
        h = self.ln(q + self.attn(q, source=memory))
        logits = self.out(h + self.mlp(h))
        return logits[..., : len(SEVERITIES)], logits[..., len(SEVERITIES) :]


class SecondLook(nn.Module):
    """A second, closer look at a larger copy of the image (``config.second_look["image_size"]``, e.g. 256 px where
    the encoder sees 128): its own conv stem (stride-2 residual stages, ``channels``) to a grid, learned 2-D positions,
    then one learned query per label attends the grid; an MLP, then a linear gives per label a finding logit,
    3 severity logits (SEVERITIES), 2 side logits (SIDES) and a box per slot (BOX_SLOTS; centre and size through a
    sigmoid, as x_min, y_min, x_max, y_max in 0-1). Small findings (a 1 cm nodule is 3 px at 128 px) are resolved
    here; the encoder, decoder and finding head are not touched."""

    def __init__(self, cfg: GazeXConfig):
        super().__init__()
        spec = cfg.second_look
        chans = [1, *spec["channels"]]
        d, grid = chans[-1], spec["image_size"] // 2 ** (len(chans) - 1)
        self.stages = nn.Sequential(*[ResStage(chans[i], chans[i + 1]) for i in range(len(chans) - 1)])
        self.pos = nn.Parameter(torch.zeros(1, grid * grid, d))
        self.queries = nn.Parameter(torch.randn(1, cfg.n_labels, d) * 0.02)
        self.attn = Attention(d, spec.get("n_heads", 4), 0.0)
        self.ln = nn.LayerNorm(d)
        self.mlp = MLP(d, 2, spec.get("dropout", 0.1))
        self.out = nn.Linear(d, 1 + len(SEVERITIES) + len(SIDES) + 4 * len(BOX_SLOTS))

    def forward(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(B, 1, S2, S2) in 0-1 -> finding logits (B, L), severity logits (B, L, 3), side logits (B, L, 2),
        boxes (B, L, 3, 4)."""
        x = self.stages((pixel_values - 0.5) / 0.25).flatten(2).transpose(1, 2) + self.pos
        q = self.queries.expand(x.shape[0], -1, -1)
        h = self.ln(q + self.attn(q, source=x))
        logits = self.out(h + self.mlp(h))
        n_sev, n_side = len(SEVERITIES), len(SIDES)
        centre_size = torch.sigmoid(logits[..., 1 + n_sev + n_side :].unflatten(-1, (len(BOX_SLOTS), 4)))
        centre, half = centre_size[..., :2], centre_size[..., 2:] / 2
        boxes = torch.cat([(centre - half).clamp(0, 1), (centre + half).clamp(0, 1)], -1)
        return logits[..., 0], logits[..., 1 : 1 + n_sev], logits[..., 1 + n_sev : 1 + n_sev + n_side], boxes


class GazeHead(nn.Module):
    """Where readers look for each ABCDEF region of this study: ``config.gaze_head["points"]`` learned queries per
    region (``vocab.REGIONS`` order) attend the image memory; an MLP, then a linear gives each query's point (x, y
    in 0-1 through a sigmoid). The anatomy moves from study to study (lung fields, heart, diaphragm), so where a
    reader's eyes go while stating a normal region does too; the decoder's own key frames barely follow it."""

    def __init__(self, cfg: GazeXConfig):
        super().__init__()
        self.n_regions, self.points = len(cfg.gaze_head["regions"]), cfg.gaze_head["points"]
        self.queries = nn.Parameter(torch.randn(1, self.n_regions * self.points, cfg.d_model) * 0.02)
        self.attn = Attention(cfg.d_model, cfg.n_heads, 0.0)
        self.ln = nn.LayerNorm(cfg.d_model)
        self.mlp = MLP(cfg.d_model, 2, 0.0)
        self.out = nn.Linear(cfg.d_model, 2)

    def forward(self, memory: torch.Tensor) -> torch.Tensor:
        """memory (B, P, d) -> points (B, n_regions, points, 2): x, y in 0-1."""
        q = self.queries.expand(memory.shape[0], -1, -1)
        h = self.ln(q + self.attn(q, source=memory))
        return torch.sigmoid(self.out(h + self.mlp(h))).unflatten(1, (self.n_regions, self.points))


@dataclass
class ImageReading:
    """Everything the model reads from an image before any text: the encoder memory, the finding logits and,
    where a head gives them, severity and side probabilities per label."""

    memory: torch.Tensor  # (B, P, d)
    finding_logits: torch.Tensor  # (B, n_labels)
    severity: torch.Tensor | None = None  # (B, n_labels, 3) probabilities over SEVERITIES
    side: torch.Tensor | None = None  # (B, n_labels, 2) probability of each of SIDES
    boxes: torch.Tensor | None = None  # (B, n_labels, 3, 4): the second look's box per BOX_SLOTS (x0, y0, x1, y1 in 0-1)
    gaze: torch.Tensor | None = None  # (B, n_regions, points, 2): the gaze head's points per region (x, y in 0-1)


@dataclass
class GazeXOutput:
    loss: torch.Tensor | None = None
    lm_loss: torch.Tensor | None = None
    finding_loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    finding_logits: torch.Tensor | None = None


# ------------------------------------------------------------------ the model


class GazeXModel(nn.Module):
    def __init__(self, config: GazeXConfig):
        super().__init__()
        self.config = config
        d = config.d_model
        self.encoder = ImageEncoder(config)
        self.finding_head = FindingHead(config)
        self.embed_tokens = nn.Embedding(config.vocab_size, d)
        self.embed_positions = nn.Embedding(config.max_positions, d)
        self.drop = nn.Dropout(config.dropout)
        self.layers = nn.ModuleList([DecoderLayer(config) for _ in range(config.n_decoder_layers)])
        self.ln_f = nn.LayerNorm(d)
        self.lm_head = nn.Linear(d, config.vocab_size, bias=False)
        self.apply(self._init_weights)
        self.lm_head.weight = self.embed_tokens.weight
        self.attribute_head = None
        if config.attribute_head:  # built last, from a forked random state: every other parameter's
            with torch.random.fork_rng(devices=[]):  # initialisation and the random stream after it stay as without it
                self.attribute_head = AttributeHead(config)
                self.attribute_head.apply(self._init_weights)
        self.second_look = None
        if config.second_look:
            with torch.random.fork_rng(devices=[]):
                self.second_look = SecondLook(config)
                self.second_look.apply(self._init_weights)
        self.gaze_head = None
        if config.gaze_head:
            with torch.random.fork_rng(devices=[]):
                self.gaze_head = GazeHead(config)
                self.gaze_head.apply(self._init_weights)

    # ---- saving and loading
    def save_pretrained(self, out: str | Path, **_: object) -> None:
        """``out/config.json`` + ``out/model.safetensors`` in the parameters' current dtype."""
        from safetensors.torch import save_file

        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().contiguous() for k, v in self.state_dict().items() if k not in TIED_WEIGHTS}
        dtype = str(next(self.parameters()).dtype).removeprefix("torch.")
        config = {**self.config.to_dict(), "architectures": [type(self).__name__], "dtype": dtype}
        (out / CONFIG_FILE).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
        save_file(state, str(out / WEIGHTS_FILE), metadata={"format": "pt"})

    @classmethod
    def from_pretrained(cls, path: str | Path, dtype: torch.dtype = torch.float32) -> GazeXModel:
        """A saved directory -> the model with its weights in ``dtype`` (fp16 storage is cast back)."""
        from safetensors.torch import load_file

        path = Path(path)
        model = cls(GazeXConfig.from_json_file(path / CONFIG_FILE))
        state = {k: v.to(dtype) for k, v in load_file(str(path / WEIGHTS_FILE)).items()}
        missing, unexpected = model.to(dtype).load_state_dict(state, strict=False)
        missing = sorted(set(missing) - set(TIED_WEIGHTS))
        if missing or unexpected:
            raise ValueError(f"{path / WEIGHTS_FILE}: weights do not fit the config "
                             f"(missing {missing[:3]}, unexpected {unexpected[:3]})")
        return model

    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, std=0.02)
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)

    def get_input_embeddings(self) -> nn.Module:
        return self.embed_tokens

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.embed_tokens = value

    def get_output_embeddings(self) -> nn.Module:
        return self.lm_head

    # ---- pieces
    def encode(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """pixel_values (B, 1, S, S) in 0-1 -> (memory (B, P, d), finding logits (B, n_labels))."""
        memory = self.encoder(pixel_values)
        return memory, self.finding_head(memory)

    def attributes(self, memory: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Severity probabilities (B, n_labels, 3) and side probabilities (B, n_labels, 2), or None without the head."""
        if self.attribute_head is None:
            return None
        severity, side = self.attribute_head(memory)
        return severity.softmax(-1), torch.sigmoid(side)

    def read_image(self, pixel_values: torch.Tensor, second_pixel_values: torch.Tensor | None = None) -> ImageReading:
        """The encoder and every head. With a second look (and its larger input), each label named in
        ``config.second_look["finding_labels"]`` takes the second look's finding logit ("second") or the mean of
        both ("mean"); each label in its ``severity_labels`` / ``side_labels`` takes its severity / side."""
        memory, logits = self.encode(pixel_values)
        attributes = self.attributes(memory)
        severity, side = attributes if attributes is not None else (None, None)
        gaze = self.gaze_head(memory) if self.gaze_head is not None else None
        if self.second_look is None or second_pixel_values is None:
            return ImageReading(memory, logits, severity, side, gaze=gaze)
        spec, names = self.config.second_look, self.config.label_names
        finding2, severity2, side2, boxes = self.second_look(second_pixel_values)
        logits = logits.clone()
        for label, how in spec.get("finding_labels", {}).items():
            j = names.index(label)
            logits[:, j] = finding2[:, j] if how == "second" else (logits[:, j] + finding2[:, j]) / 2
        severity = _rows_from(severity, severity2.softmax(-1), [names.index(x) for x in spec.get("severity_labels", ())])
        side = _rows_from(side, torch.sigmoid(side2), [names.index(x) for x in spec.get("side_labels", ())])
        return ImageReading(memory, logits, severity, side, boxes, gaze)

    def decode(self, input_ids, memory=None, cross_kvs=None, caches=None, start: int = 0) -> torch.Tensor:
        t = input_ids.shape[1]
        if start + t > self.config.max_positions:
            raise ValueError(f"sequence of {start + t} tokens exceeds max_positions={self.config.max_positions}")
        pos = torch.arange(start, start + t, device=input_ids.device)
        x = self.drop(self.embed_tokens(input_ids) + self.embed_positions(pos))
        for i, layer in enumerate(self.layers):
            x = layer(
                x,
                memory=memory,
                cross_kv=None if cross_kvs is None else cross_kvs[i],
                cache=None if caches is None else caches[i],
            )
        return self.lm_head(self.ln_f(x))

    def forward(
        self,
        pixel_values: torch.Tensor,
        input_ids: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        finding_labels: torch.Tensor | None = None,
        finding_mask: torch.Tensor | None = None,
        **_: object,
    ) -> GazeXOutput:
        memory, finding_logits = self.encode(pixel_values)
        out = GazeXOutput(finding_logits=finding_logits)
        losses = []
        if input_ids is not None:
            logits = self.decode(input_ids, memory=memory)
            out.logits = logits
            if labels is not None:
                # labels are aligned with input_ids; predict token t+1 from position t
                lm = F.cross_entropy(
                    logits[:, :-1].reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1), ignore_index=-100
                )
                out.lm_loss = lm
                losses.append(lm)
        if finding_labels is not None:
            bce = F.binary_cross_entropy_with_logits(finding_logits, finding_labels.float(), reduction="none")
            if finding_mask is not None:
                bce = bce * finding_mask[:, None]
                fl = bce.sum() / (finding_mask.sum() * bce.shape[1]).clamp(min=1)
            else:
                fl = bce.mean()
            out.finding_loss = fl
            losses.append(self.config.finding_loss_weight * fl)
        if losses:
            out.loss = sum(losses)
        return out

    # ---- greedy decoding with a KV cache
    @torch.no_grad()
    def generate_greedy(
        self,
        memory: torch.Tensor,
        prompt_ids: torch.Tensor,
        max_new_tokens: int = 400,
        logits_hook: Callable[[int, list[int], torch.Tensor], torch.Tensor] | None = None,
    ) -> tuple[list[list[int]], list[list[float]]]:
        """Greedy decoding for a batch of equal-length prompts.

        ``logits_hook(row, generated_so_far, logits_row) -> logits_row`` may mask tokens (constrained decoding).
        Returns, per row, the generated ids (up to and including <eos>) and each chosen token's probability.
        """
        b = prompt_ids.shape[0]
        if memory.shape[0] != b:
            memory = memory.expand(b, -1, -1)
        cross_kvs = [layer.cross_attn.kv(memory) for layer in self.layers]
        caches: list[dict] = [{} for _ in self.layers]
        max_new_tokens = min(max_new_tokens, self.config.max_positions - prompt_ids.shape[1])
        logits = self.decode(prompt_ids, cross_kvs=cross_kvs, caches=caches, start=0)[:, -1]
        pos = prompt_ids.shape[1]
        eos = self.config.eos_token_id
        out: list[list[int]] = [[] for _ in range(b)]
        probs: list[list[float]] = [[] for _ in range(b)]
        done = [False] * b
        for _ in range(max_new_tokens):
            if logits_hook is not None:
                logits = torch.stack([logits_hook(r, out[r], logits[r]) for r in range(b)])
            p = logits.float().softmax(-1)
            nxt = p.argmax(-1)
            for r in range(b):
                if not done[r]:
                    tok = int(nxt[r])
                    out[r].append(tok)
                    probs[r].append(float(p[r, tok]))
                    done[r] = tok == eos
            if all(done):
                break
            logits = self.decode(nxt[:, None], cross_kvs=cross_kvs, caches=caches, start=pos)[:, -1]
            pos += 1
        return out, probs


def _rows_from(base: torch.Tensor | None, other: torch.Tensor, labels: list[int]) -> torch.Tensor:
    """``base`` with the rows of ``labels`` (dim 1) taken from ``other``; ``other`` itself where there is no base."""
    if base is None:
        return other
    out = base.clone()
    out[:, labels] = other[:, labels]
    return out


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def init_model(config: GazeXConfig, seed: int = 0) -> GazeXModel:
    torch.manual_seed(seed)
    model = GazeXModel(config)
    # GPT-2 style scaled init of the residual output projections
    for name, p in model.named_parameters():
        if name.endswith("o_proj.weight") or name.endswith("down_proj.weight"):
            nn.init.normal_(p, std=0.02 / math.sqrt(2 * config.n_decoder_layers))
    return model
