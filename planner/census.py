"""What one decoder layer of a config's own model saves for backward, per token, counted on
the CPU: transformers builds the architecture from the config at a small width (the same
layout: head counts, GQA groups, expert counts and the ratios between widths kept), one
forward runs under bf16 autocast, and every tensor autograd keeps is counted once per
storage (torch.autograd.graph.saved_tensors_hooks). The difference between a 3-layer and a
2-layer model, at two token counts, is one layer's bytes per token.

planner/models.py derive() holds the activation formula of planner/memory.py to this count
for an architecture ftplan has not measured; a disagreement refuses the model. torch,
transformers and peft are imported here only, lazily (the catalog path never pays)."""

from __future__ import annotations

from planner.spec import CONV_HYBRID_TYPES

HIDDEN = 256
HEADS = 8
HEAD_DIM = 32
VOCAB = 512
TOKENS = ((1, 256), (2, 256))
# Width keys scaled with the hidden size (MLP and expert widths), and keys cut to the layers built.
_WIDTHS = ("intermediate_size", "moe_intermediate_size", "shared_expert_intermediate_size", "ffn_hidden_size", "block_ff_dim")
_PER_LAYER = ("layer_types", "mlp_only_layers")


def small_config(cfg: dict, layers: int) -> dict:
    """`cfg` at HIDDEN width with `layers` layers: what the census builds."""
    c = dict(cfg)
    hidden = c.get("hidden_size") or c.get("n_embd") or c.get("d_model")
    heads = c.get("num_attention_heads") or c.get("n_head")
    kv = c.get("num_key_value_heads") or heads
    scale = HIDDEN / hidden
    c.update(hidden_size=HIDDEN, num_attention_heads=HEADS, num_key_value_heads=max(1, HEADS * kv // heads),
             head_dim=HEAD_DIM, vocab_size=VOCAB, num_hidden_layers=layers, bos_token_id=1, eos_token_id=2,
             pad_token_id=0)
    for key in ("n_embd", "d_model", "n_head", "n_layer", "num_layers"):
        c.pop(key, None)
    if "max_window_layers" in c:
        c["max_window_layers"] = layers
    for key in _WIDTHS:
        if c.get(key):
            c[key] = max(8, int(c[key] * scale) // 8 * 8)
    if c.get("kv_lora_rank"):  # latent attention: its head widths (HEAD_DIM in all) and latents shrink alike
        nope, rope, v = (c.get(k) or d for k, d in (("qk_nope_head_dim", 128), ("qk_rope_head_dim", 64), ("v_head_dim", 128)))
        ratio = HEAD_DIM / (nope + rope)
        rope_small = max(2, int(rope * ratio) // 2 * 2)
        c.update(qk_nope_head_dim=HEAD_DIM - rope_small, qk_rope_head_dim=rope_small, v_head_dim=max(2, int(v * ratio)),
                 head_dim=rope_small,  # the rotary embedding's width, as the config classes set it
                 kv_lora_rank=max(8, int(c["kv_lora_rank"] * scale) // 8 * 8))
        if c.get("q_lora_rank"):
            c["q_lora_rank"] = max(8, int(c["q_lora_rank"] * scale) // 8 * 8)
    if c.get("first_k_dense_replace"):  # one dense layer first: the third layer, counted, is a MoE one
        c["first_k_dense_replace"] = 1
    for key in _PER_LAYER:
        if isinstance(c.get(key), list):
            c[key] = [x for x in c[key] if not isinstance(x, int) or x < layers][:layers] if key == "mlp_only_layers" \
                else (c[key] * layers)[:layers]  # a model of fewer layers than the census builds repeats its pattern
    return c


def layer_kinds(cfg: dict) -> dict[str, dict]:
    """A config for each kind of layer the census counts, the counted third layer being of that
    kind: the config itself, or for a hybrid of attention and convolution layers (LFM2) one all
    attention ("") and one all convolution ("conv")."""
    if cfg.get("model_type") not in CONV_HYBRID_TYPES:
        return {"": cfg}
    layers = max(3, cfg.get("num_hidden_layers") or 3)  # small_config cuts the list to the layers it builds
    plain = {k: v for k, v in cfg.items() if k != "full_attn_idxs"}
    return {"": {**plain, "layer_types": ["full_attention"] * layers}, "conv": {**plain, "layer_types": ["conv"] * layers}}


def _model(cfg: dict, method: str, targets: list[str]):
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    known = dict(cfg)
    config = AutoConfig.for_model(known.pop("model_type"), **known)
    torch.manual_seed(0)
    model = None
    for attention in ("sdpa", "eager"):  # the kernel the scripts ask for, where the class has it
        try:
            config._attn_implementation = attention
            model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
            break
        except ValueError:
            continue
    model.config.use_cache = False
    if method == "lora":
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules=targets))
        for module in model.modules():  # as the rendered scripts do: no input cast
            if hasattr(module, "cast_input_dtype_enabled"):
                module.cast_input_dtype_enabled = False
    model.train()
    return model


def decoder(model):
    """The decoder stack under a PEFT wrapper or a causal-LM head."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return getattr(base, base.base_model_prefix)


def saved_storages(model, ids, device: str = "cpu", autocast: bool = True) -> dict[int, tuple[int, str]]:
    """The distinct storages autograd saves for backward while the decoder of `model` runs on
    `ids` (no lm_head, no loss; parameters left out), by address: their bytes and the kind of
    the first tensor saved in each ("torch.float32 x4544": dtype and last dimension)."""
    import torch

    params = {p.data_ptr() for p in model.parameters()}
    seen: dict[int, tuple[int, str]] = {}

    def pack(t):
        if t.numel() and t.data_ptr() not in params:
            storage = t.untyped_storage()
            seen.setdefault(storage.data_ptr(), (storage.nbytes(), f"{t.dtype} x{t.shape[-1] if t.dim() else 1}"))
        return t.detach()  # the tensor itself would tie its graph into a cycle Python never frees

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), \
            torch.autocast(device, dtype=torch.bfloat16, enabled=autocast):
        decoder(model)(input_ids=ids)
    return seen


def saved_bytes(model, ids, device: str = "cpu", autocast: bool = True) -> int:
    """Bytes of the distinct storages autograd saves for backward (saved_storages)."""
    return sum(nbytes for nbytes, _ in saved_storages(model, ids, device, autocast).values())


def _saved_bytes(cfg: dict, method: str, targets: list[str], shapes) -> list[int]:
    """saved_bytes at each (batch, tokens) shape, one model built."""
    import torch

    model = _model(cfg, method, targets)
    return [saved_bytes(model, torch.randint(0, VOCAB, shape)) for shape in shapes]


def per_layer_per_token(cfg: dict, method: str, targets: list[str]) -> float:
    """One layer's saved bytes per token of `cfg` at the small width: the differences over
    layers and over tokens cancel what is saved once per layer or once per model."""
    (a, b), (c, d) = TOKENS
    three, two = (_saved_bytes(small_config(cfg, n), method, targets, TOKENS) for n in (3, 2))
    one = [x - y for x, y in zip(three, two)]
    return (one[1] - one[0]) / (c * d - a * b)
