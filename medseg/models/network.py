"""The promptable network: segment-anything's modules composed by constructor injection.

:class:`PromptableSAM` keeps SAM's three parts under SAM's own attribute names
(``image_encoder``, ``prompt_encoder``, ``mask_decoder``), so an official SAM / MedSAM state
dict loads strictly into it. medseg's own models add one thing: a learned **structure token**
per cardiac structure (``structure_embed``), appended to the sparse prompt tokens. With a box
or clicks it tells the decoder which structure is meant (a box around the LV is ambiguous
between cavity and epicardium); alone, it is the zero-click ("auto") prompt.

Shapes (B = prompts in the batch, S = ``config.img_size``, E = ``config.embed_size``):
  image (B or 1, 1, S, S) in [0, 1]; points (B, P, 2) in model-input pixels, **(x, y)**;
  point_labels (B, P): 1 positive, 0 negative, -1 padding; boxes (B, 4) XYXY model pixels;
  has_box (B,) bool; structure (B,) long (0 = generic, i = ``config.structures[i-1]``);
  mask_inputs (B, 1, 4E, 4E) logits; has_mask (B,) bool.
  Outputs: low-res logits (B, 4, 4E, 4E) (token 0 = single-mask output, 1-3 = multimask) and
  IoU predictions (B, 4).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import partial
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

#: encoder input channels each input convention feeds (None: any, repeated from the one channel)
INPUT_CHANNELS: dict[str, int | None] = {"unit": None, "sam": 3, "medsam": 3}
#: the largest network a config may ask for (4 GB of float32; SAM ViT-H has 0.64 billion)
MAX_WEIGHTS = 1.0e9
#: the largest attention-score matrix one image may need in one encoder block (float32 bytes,
#: heads x tokens^2; SAM ViT-H's global blocks: 16 x 4096^2 x 4 = 1.07 GB, medseg's default 1 MB)
MAX_ATTENTION_BYTES = 4.0e9


@dataclass(frozen=True)
class ModelConfig:
    """Architecture and input convention of one promptable model."""

    name: str = "medseg-default"
    img_size: int = 256
    patch_size: int = 16
    in_chans: int = 1
    embed_dim: int = 160
    depth: int = 8
    num_heads: int = 4
    mlp_ratio: float = 4.0
    use_rel_pos: bool = False
    window_size: int = 0
    global_attn_indexes: tuple[int, ...] = ()
    prompt_dim: int = 256
    decoder_depth: int = 2
    decoder_mlp_dim: int = 2048
    decoder_heads: int = 8
    structures: tuple[str, ...] = ("lv", "myo", "rv", "la", "ra", "aorta", "pa")
    # input convention: "unit" (x in [0,1], (x - 0.5) / 0.25), "sam" (x*255, ImageNet mean/std,
    # 3 channels), "medsam" (x in [0,1], 3 channels)
    input_norm: str = "unit"
    roi_margin: float = 0.25

    def __post_init__(self) -> None:
        """Types and ranges, so that a checkpoint's header cannot ask for a network no computer
        holds (an embed_dim of 8192 and 64 blocks: ~50 billion weights, from a 7 KB file; a
        4096 px image in 1 px patches: a 10.7 GB position table) nor one that fails later."""
        ints = {"img_size": (16, 4096), "patch_size": (1, 64), "in_chans": (1, 4), "embed_dim": (8, 2048), "depth": (1, 64),
                "num_heads": (1, 64), "window_size": (0, 256), "prompt_dim": (8, 1024), "decoder_depth": (1, 16),
                "decoder_mlp_dim": (8, 16384), "decoder_heads": (1, 64)}
        for name, (lo, hi) in ints.items():
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
                raise ValueError(f"{name} must be a whole number in {lo}..{hi}, got {v!r}")
        for name, (lo, hi) in {"mlp_ratio": (0.25, 16), "roi_margin": (0, 4)}.items():
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not lo <= v <= hi:  # NaN fails the range too
                raise ValueError(f"{name} must be a number in {lo}..{hi}, got {v!r}")
        if not isinstance(self.use_rel_pos, bool):
            raise ValueError(f"use_rel_pos must be true or false, got {self.use_rel_pos!r}")
        if self.img_size % self.patch_size or self.embed_dim % self.num_heads or self.prompt_dim % (2 * self.decoder_heads):
            raise ValueError("img_size must be a multiple of patch_size, embed_dim of num_heads, prompt_dim of 2 x decoder_heads, "
                             f"got {self.img_size}, {self.patch_size}, {self.embed_dim}, {self.num_heads}, {self.prompt_dim}, {self.decoder_heads}")
        if not all(isinstance(i, int) and not isinstance(i, bool) and 0 <= i < self.depth for i in self.global_attn_indexes):
            raise ValueError(f"global_attn_indexes must be block numbers below depth {self.depth}")
        if not all(isinstance(n, str) for n in self.structures) or not isinstance(self.name, str):
            raise ValueError("structures and name must be text")
        twice = sorted({n for n in self.structures if self.structures.count(n) > 1})
        if twice:
            raise ValueError(f"structures must name each structure once, got {', '.join(map(repr, twice))} more than once")
        if self.input_norm not in INPUT_CHANNELS:
            raise ValueError(f"input_norm must be unit, sam or medsam, got {self.input_norm!r}")
        need = INPUT_CHANNELS[self.input_norm]
        if need is not None and self.in_chans != need:
            raise ValueError(f"input_norm {self.input_norm!r} feeds the encoder {need} channels: in_chans must be {need}, got {self.in_chans}")
        weights = self.n_weights()
        if weights > MAX_WEIGHTS:  # SAM ViT-H, the largest supported, has 0.64 billion
            raise ValueError(f"a network of ~{weights / 1e9:.1f} billion weights (img_size {self.img_size}, patch_size {self.patch_size}, "
                             f"embed_dim {self.embed_dim}, depth {self.depth}); at most {MAX_WEIGHTS / 1e9:.0f} billion are allowed")
        side = self.embed_size if not self.window_size or self.global_attn_indexes else self.window_size  # tokens per attention: side^2
        scores = 4 * self.num_heads * side**4
        if scores > MAX_ATTENTION_BYTES:  # a small network on a fine patch grid: the first image would exhaust the memory
            raise ValueError(f"attention over {side}x{side} tokens in {self.num_heads} heads needs {scores / 1e9:.0f} GB per image "
                             f"(img_size {self.img_size}, patch_size {self.patch_size}, window_size {self.window_size}); "
                             f"at most {MAX_ATTENTION_BYTES / 1e9:.0f} GB are allowed")

    def n_weights(self) -> int:
        """The number of weights (parameters and saved buffers) :func:`build_network` makes for
        this config, counted without building anything: the encoder's position table
        ((img_size / patch_size)^2 x embed_dim), its blocks and relative-position tables, the
        prompt encoder, the mask decoder and the structure tokens."""
        d, p, e, m = self.embed_dim, self.prompt_dim, self.embed_size, self.decoder_mlp_dim
        hidden, p2, p4, p8 = int(d * self.mlp_ratio), p // 2, p // 4, p // 8
        enc = d * self.in_chans * self.patch_size**2 + d + e * e * d  # patch embedding, position table
        enc += self.depth * (4 * d + 4 * d * d + 4 * d + 2 * d * hidden + hidden + d)  # norms, qkv + proj, MLP
        if self.use_rel_pos:
            for i in range(self.depth):
                side = self.window_size if self.window_size and i not in self.global_attn_indexes else e
                enc += 2 * (2 * side - 1) * (d // self.num_heads)
        enc += d * p + 9 * p * p + 4 * p  # neck
        prompt = 2 * p2 + 6 * p + 20 + 8 + 272 + 32 + 16 * p + p  # Fourier matrix, embeddings, mask downscaling
        cross = 4 * p * p2 + 3 * p2 + p
        layer = 4 * p * p + 4 * p + 2 * cross + 2 * p * m + m + p + 8 * p
        dec = self.decoder_depth * layer + cross + 2 * p + 5 * p  # transformer, iou + mask tokens
        dec += p * p4 * 4 + p4 + 2 * p4 + p4 * p8 * 4 + p8  # output upscaling
        dec += 4 * (2 * p * p + 2 * p + p * p8 + p8)  # hypernetwork MLPs
        dec += p * 256 + 256 + 256 * 256 + 256 + 256 * 4 + 4  # IoU head
        tokens = (len(self.structures) + 1) * p if self.structures else 0
        return enc + prompt + dec + tokens

    @property
    def embed_size(self) -> int:
        return self.img_size // self.patch_size

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["global_attn_indexes"] = list(self.global_attn_indexes)
        d["structures"] = list(self.structures)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        known = {f for f in cls.__dataclass_fields__}
        kw = {k: v for k, v in d.items() if k in known}
        for k in ("global_attn_indexes", "structures"):
            if k in kw:
                if not isinstance(kw[k], (list, tuple)):
                    raise ValueError(f"{k} must be a list, got {type(kw[k]).__name__}")
                kw[k] = tuple(kw[k])
        return cls(**kw)


_SAM_MEAN = (123.675, 116.28, 103.53)
_SAM_STD = (58.395, 57.12, 57.375)


def decode_batched(d: nn.Module, image_embeddings: torch.Tensor, image_pe: torch.Tensor, sparse: torch.Tensor, dense: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """segment-anything's ``MaskDecoder.predict_masks``, also accepting one image embedding
    *per prompt*: the stock decoder repeats a single embedding for every prompt, while training
    batches many images with one prompt each. ``image_embeddings`` is (B, C, h, w) with B equal
    to the number of prompts, or (1, C, h, w) shared by all (as in SAM).
    """
    out_tokens = torch.cat([d.iou_token.weight, d.mask_tokens.weight], dim=0)
    tokens = torch.cat((out_tokens.unsqueeze(0).expand(sparse.size(0), -1, -1), sparse), dim=1)
    b = tokens.shape[0]
    src = image_embeddings if image_embeddings.shape[0] == b else image_embeddings.expand(b, -1, -1, -1)
    src = src + dense
    pos_src = image_pe.expand(b, -1, -1, -1)
    _, c, h, w = src.shape
    hs, src = d.transformer(src, pos_src, tokens)
    iou_token_out = hs[:, 0, :]
    mask_tokens_out = hs[:, 1 : 1 + d.num_mask_tokens, :]
    upscaled = d.output_upscaling(src.transpose(1, 2).reshape(b, c, h, w))
    hyper_in = torch.stack([mlp(mask_tokens_out[:, i, :]) for i, mlp in enumerate(d.output_hypernetworks_mlps)], dim=1)
    _, c2, h2, w2 = upscaled.shape
    masks = (hyper_in @ upscaled.reshape(b, c2, h2 * w2)).reshape(b, -1, h2, w2)
    return masks, d.iou_prediction_head(iou_token_out)


class PromptableSAM(nn.Module):
    """Image encoder + prompt encoder + mask decoder (+ structure tokens)."""

    def __init__(self, config: ModelConfig, image_encoder: nn.Module, prompt_encoder: nn.Module, mask_decoder: nn.Module) -> None:
        super().__init__()
        self.config = config
        self.image_encoder = image_encoder
        self.prompt_encoder = prompt_encoder
        self.mask_decoder = mask_decoder
        n = len(config.structures)
        self.structure_embed = nn.Embedding(n + 1, config.prompt_dim) if n else None
        if n:
            nn.init.normal_(self.structure_embed.weight, std=0.02)
        self._set_constants()

    def _set_constants(self, device: torch.device | str | None = None) -> None:
        """The buffers no checkpoint holds (SAM's pixel mean and std); again after
        :func:`materialize` has allocated a :func:`build_skeleton` network."""
        if self.config.input_norm == "sam":
            self.register_buffer("pixel_mean", torch.tensor(_SAM_MEAN, device=device).view(1, 3, 1, 1), persistent=False)
            self.register_buffer("pixel_std", torch.tensor(_SAM_STD, device=device).view(1, 3, 1, 1), persistent=False)

    # -- helpers -------------------------------------------------------------------------
    def structure_index(self, name: str | None) -> int:
        """Token index for a structure name; 0 (generic) for None or unknown names."""
        if name is None or name not in self.config.structures:
            return 0
        return self.config.structures.index(name) + 1

    def preprocess(self, x01: torch.Tensor) -> torch.Tensor:
        """(B, 1, S, S) intensities in [0, 1] -> the encoder's input convention."""
        norm = self.config.input_norm
        if norm == "unit":
            x = (x01 - 0.5) / 0.25
            return x if self.config.in_chans == 1 else x.expand(-1, self.config.in_chans, -1, -1)
        x3 = x01.expand(-1, 3, -1, -1)
        if norm == "sam":
            return (x3 * 255.0 - self.pixel_mean) / self.pixel_std
        return x3  # medsam

    def encode(self, x01: torch.Tensor) -> torch.Tensor:
        """(B, 1, S, S) in [0, 1] -> image embeddings (B, prompt_dim, E, E)."""
        return self.image_encoder(self.preprocess(x01))

    def embed_prompts(
        self,
        batch: int,
        points: torch.Tensor | None = None,
        point_labels: torch.Tensor | None = None,
        boxes: torch.Tensor | None = None,
        has_box: torch.Tensor | None = None,
        structure: torch.Tensor | None = None,
        mask_inputs: torch.Tensor | None = None,
        has_mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Sparse (B, N, C) and dense (B, C, E, E) prompt embeddings; see module docstring.
        Computed in float32 even under autocast: the random-Fourier positional encoding of
        point coordinates loses its phase in bfloat16."""
        dev_type = self.prompt_encoder.no_mask_embed.weight.device.type
        with torch.autocast(device_type=dev_type, enabled=False):
            return self._embed_prompts(batch, points, point_labels, boxes, has_box, structure, mask_inputs, has_mask)

    def _embed_prompts(self, batch, points, point_labels, boxes, has_box, structure, mask_inputs, has_mask):
        pe = self.prompt_encoder
        dev = pe.no_mask_embed.weight.device
        parts: list[torch.Tensor] = []
        if points is not None and points.shape[1] > 0:
            parts.append(pe._embed_points(points.float(), point_labels, pad=False))
        if boxes is not None:
            box_tok = pe._embed_boxes(boxes.float())
            if has_box is not None:
                pad = pe.not_a_point_embed.weight.view(1, 1, -1).expand(batch, 2, -1)
                box_tok = torch.where(has_box.view(-1, 1, 1), box_tok, pad)
            parts.append(box_tok)
        if self.structure_embed is not None:
            idx = structure if structure is not None else torch.zeros(batch, dtype=torch.long, device=dev)
            parts.append(self.structure_embed(idx).unsqueeze(1))
        if not parts:  # nothing at all: one padding token, as SAM does
            parts.append(pe.not_a_point_embed.weight.view(1, 1, -1).expand(batch, 1, -1))
        sparse = torch.cat(parts, dim=1)
        e = self.config.embed_size
        no_mask = pe.no_mask_embed.weight.view(1, -1, 1, 1).expand(batch, -1, e, e)
        if mask_inputs is None:
            return sparse, no_mask
        dense = pe.mask_downscaling(mask_inputs.float())
        if has_mask is not None:
            dense = torch.where(has_mask.view(-1, 1, 1, 1), dense, no_mask)
        return sparse, dense

    def decode(self, embeddings: torch.Tensor, sparse: torch.Tensor, dense: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Low-res mask logits (B, 4, 4E, 4E) and IoU predictions (B, 4)."""
        dev_type = embeddings.device.type
        with torch.autocast(device_type=dev_type, enabled=False):
            image_pe = self.prompt_encoder.get_dense_pe()
        return decode_batched(self.mask_decoder, embeddings, image_pe, sparse, dense)

    def forward(self, images01: torch.Tensor, **prompts: Any) -> tuple[torch.Tensor, torch.Tensor]:
        emb = self.encode(images01)
        sparse, dense = self.embed_prompts(images01.shape[0], **prompts)
        return self.decode(emb, sparse, dense)


def upsample_logits(low_res: torch.Tensor, size: int) -> torch.Tensor:
    """(B, K, h, w) -> (B, K, size, size) bilinear, as SAM's postprocessing."""
    return F.interpolate(low_res, size=(size, size), mode="bilinear", align_corners=False)


def sam_modeling():
    """``segment_anything.modeling`` (the model modules medseg builds on), imported without
    running segment-anything's package ``__init__`` first: that imports its predictor and with it
    torchvision and torch._dynamo, 1.3-1.6 s of every medseg process on a 2-core CPU, for code
    medseg never calls. The package's ``__init__`` still runs, in full, on the first use of
    anything else of it (``segment_anything.sam_model_registry``, ``SamPredictor``), and then
    reuses these modules."""
    import importlib
    import importlib.util
    import sys

    if "segment_anything" not in sys.modules:
        spec = importlib.util.find_spec("segment_anything")
        if spec is None or spec.loader is None or spec.submodule_search_locations is None:
            raise ModuleNotFoundError("segment-anything is not installed: pip install segment-anything")
        pkg = importlib.util.module_from_spec(spec)  # __path__ set, __init__ not run yet

        def _init_on_first_use(name: str):
            del pkg.__getattr__
            spec.loader.exec_module(pkg)
            return getattr(pkg, name)

        pkg.__getattr__ = _init_on_first_use
        sys.modules["segment_anything"] = pkg
    return importlib.import_module("segment_anything.modeling")


def build_network(config: ModelConfig) -> PromptableSAM:
    """Instantiate an (untrained) network from segment-anything's modules."""
    sam = sam_modeling()
    ImageEncoderViT, MaskDecoder, PromptEncoder, TwoWayTransformer = sam.ImageEncoderViT, sam.MaskDecoder, sam.PromptEncoder, sam.TwoWayTransformer  # noqa: N806

    encoder = ImageEncoderViT(
        img_size=config.img_size,
        patch_size=config.patch_size,
        in_chans=config.in_chans,
        embed_dim=config.embed_dim,
        depth=config.depth,
        num_heads=config.num_heads,
        mlp_ratio=config.mlp_ratio,
        out_chans=config.prompt_dim,
        qkv_bias=True,
        norm_layer=partial(nn.LayerNorm, eps=1e-6),
        use_abs_pos=True,
        use_rel_pos=config.use_rel_pos,
        rel_pos_zero_init=True,
        window_size=config.window_size,
        global_attn_indexes=config.global_attn_indexes,
    )
    e = config.embed_size
    # made on the CPU even in build_skeleton (a few thousand numbers): its ``scale * torch.randn``
    # on the meta device runs a prims decomposition that imports torch._dynamo (~1 s of every load)
    with torch.device("cpu"):
        prompt_encoder = PromptEncoder(
            embed_dim=config.prompt_dim,
            image_embedding_size=(e, e),
            input_image_size=(config.img_size, config.img_size),
            mask_in_chans=16,
        )
    decoder = MaskDecoder(
        num_multimask_outputs=3,
        transformer=TwoWayTransformer(
            depth=config.decoder_depth,
            embedding_dim=config.prompt_dim,
            mlp_dim=config.decoder_mlp_dim,
            num_heads=config.decoder_heads,
        ),
        transformer_dim=config.prompt_dim,
        iou_head_depth=3,
        iou_head_hidden_dim=256,
    )
    return PromptableSAM(config, encoder, prompt_encoder, decoder)


def build_skeleton(config: ModelConfig) -> PromptableSAM:
    """:func:`build_network` on the meta device: every tensor's name, shape and dtype, with no
    memory allocated and no initialisation run (what a checkpoint is checked against before a
    byte of the network exists)."""
    sam_modeling()  # imported outside the meta context: nothing made at import time lands there
    with torch.device("meta"), _SkipInit():
        return build_network(config)


class _SkipInit(torch.overrides.TorchFunctionMode):
    """torch.nn.init's functions (and the in-place fills they run) leave the tensor as it is:
    on the meta device there is nothing to fill, and ``normal_`` there runs a prims
    decomposition that imports torch._dynamo (~1 s of every model load). A torch function mode
    is this thread's alone: a network built for real elsewhere at the same time is initialised."""

    _FILLS = frozenset({torch.Tensor.normal_, torch.Tensor.uniform_, torch.Tensor.zero_, torch.Tensor.fill_, torch.Tensor.erfinv_,
                        torch.Tensor.clamp_, torch.Tensor.mul_, torch.Tensor.add_})

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        tensor = args[0] if args else kwargs.get("tensor")  # nn.init passes it by keyword
        if isinstance(tensor, torch.Tensor) and tensor.is_meta and (
                getattr(func, "__module__", None) == "torch.nn.init" or func in self._FILLS):
            return tensor
        return func(*args, **kwargs)


def materialize(skeleton: PromptableSAM, state: dict[str, torch.Tensor]) -> PromptableSAM:
    """Allocate a :func:`build_skeleton` network on the CPU and fill every tensor from ``state``
    (``load_state_dict(strict=True)``: an exact copy, floating-point weights cast to the
    model's float32). Check ``state`` first (``checkpoints.check_state_fits``)."""
    model = skeleton.to_empty(device="cpu")
    model.load_state_dict(state, strict=True)
    model._set_constants("cpu")
    return model


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


SAM_VARIANTS: dict[str, dict[str, Any]] = {
    "vit_b": dict(embed_dim=768, depth=12, num_heads=12, global_attn_indexes=(2, 5, 8, 11)),
    "vit_l": dict(embed_dim=1024, depth=24, num_heads=16, global_attn_indexes=(5, 11, 17, 23)),
    "vit_h": dict(embed_dim=1280, depth=32, num_heads=16, global_attn_indexes=(7, 15, 23, 31)),
}


def sam_config(variant: str, name: str, input_norm: str = "sam") -> ModelConfig:
    """The official SAM architecture (1024 px, windowed attention, relative positions)."""
    v = SAM_VARIANTS[variant]
    return ModelConfig(
        name=name,
        img_size=1024,
        patch_size=16,
        in_chans=3,
        use_rel_pos=True,
        window_size=14,
        structures=(),
        input_norm=input_norm,
        **v,
    )


DEFAULT_CONFIG = ModelConfig()
