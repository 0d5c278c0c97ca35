"""Model architectures: the catalog, Hugging Face config.json files, Hub ids and bare sizes
("7B"), resolved to one ModelSpec (planner/spec.py), checked against the model's own code
where ftplan has not measured it."""

from __future__ import annotations

import difflib
import json
import math
import re
from dataclasses import replace
from pathlib import Path

from planner import knowledge
from planner.errors import ModelError
from planner.spec import CONV_HYBRID_TYPES, MODULE_NAMES, ModelSpec, family_table


# ---------------------------------------------------------------------- catalog
def catalog() -> list[ModelSpec]:
    return [_spec_from_row(r) for r in knowledge.rows("models", "model")]


def _spec_from_row(row: dict) -> ModelSpec:
    fields = {k: v for k, v in row.items() if k in ModelSpec.__dataclass_fields__}
    return ModelSpec(**fields)


def find_in_catalog(name: str) -> ModelSpec | None:
    key = name.strip().lower()
    for spec in catalog():
        if key in (spec.name.lower(), spec.hub_id.lower()):
            return spec
    return None


def suggestions(name: str) -> list[str]:
    names = [s.name for s in catalog()]
    lowered = {n.lower(): n for n in names}
    close = difflib.get_close_matches(name.lower(), list(lowered), n=3, cutoff=0.5)
    contains = [n for n in names if name.lower() in n.lower()]
    return list(dict.fromkeys([lowered[c] for c in close] + contains))[:4]


# ---------------------------------------------------------------------- config.json
_FAMILY_BY_MODEL_TYPE = {
    "llama": "llama", "mistral": "mistral", "mixtral": "mixtral", "qwen2": "qwen2",
    "qwen2_moe": "qwen2", "qwen3": "qwen3", "qwen3_moe": "qwen3", "gemma": "gemma",
    "gemma2": "gemma", "gemma3": "gemma", "gemma3_text": "gemma", "phi3": "phi3",
    "gpt_neox": "gpt_neox", "falcon": "falcon", "olmo2": "olmo2", "granite": "granite",
}
_KNOWN_FAMILIES = set(_FAMILY_BY_MODEL_TYPE.values())
_FOUR_NORM_TYPES = {"gemma2", "gemma3", "gemma3_text", "glm4"}  # a norm before and after each sublayer
_SHARED_EXPERT_TYPES = {"qwen2_moe"}  # a gated shared expert beside the routed ones (modeling_qwen2_moe)
_QK_NORM_TYPES = {"qwen3", "qwen3_moe", "gemma3", "gemma3_text", "olmo2", "olmoe"}


def _first(cfg: dict, *keys, default=None):
    for k in keys:
        if cfg.get(k) is not None:
            return cfg[k]
    return default


# The ranges config.json's shape fields must fall in (whole numbers; a real model is far inside them).
CONFIG_RANGES = {"hidden_size": (1, 1_000_000), "num_hidden_layers": (1, 10_000), "num_attention_heads": (1, 100_000),
                 "vocab_size": (1, 100_000_000), "num_key_value_heads": (1, 100_000), "intermediate_size": (1, 10_000_000),
                 "head_dim": (1, 65_536), "num_experts": (0, 1_000_000), "num_experts_per_tok": (1, 1_000_000),
                 "moe_intermediate_size": (1, 10_000_000), "shared_expert_intermediate_size": (1, 10_000_000), "ffn_hidden_size": (1, 10_000_000), "num_kv_heads": (1, 100_000),
                 "kv_lora_rank": (1, 1_000_000), "q_lora_rank": (1, 1_000_000), "qk_nope_head_dim": (1, 65_536),
                 "qk_rope_head_dim": (2, 65_536), "v_head_dim": (1, 65_536), "n_shared_experts": (1, 1_000),
                 "first_k_dense_replace": (0, 10_000), "conv_L_cache": (1, 1_000), "block_multiple_of": (1, 1_000_000)}
# Heads whose names say the model predicts the next token (a causal LM), or a multimodal model
# whose text part is one.
CAUSAL_HEADS = ("ForCausalLM", "LMHeadModel", "ForConditionalGeneration")


def _whole(name: str, key: str, value, default=None) -> int:
    """config.json's `key` as a whole number in CONFIG_RANGES, or ModelError saying the range."""
    if value is None:
        if default is None:
            raise ModelError(f"{name}: config.json lacks {key}; is it a causal language model's config?")
        value = default
    low, high = CONFIG_RANGES.get(key, (0, 10**9))
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        shown = repr(value) if not isinstance(value, str) or len(value) < 40 else repr(value[:40]) + "..."
        raise ModelError(f"{name}: config.json's {key} is {shown}; it must be a whole number from {low:,} to {high:,}")
    return value


# What transformers' config classes default tie_word_embeddings to when config.json omits it
# (each model_type's configuration_*.py in transformers 5; PretrainedConfig's own default is tied).
_TIED_BY_DEFAULT = {"gemma", "gemma2", "gemma3", "gemma3_text", "falcon", "gpt2", "starcoder2", "cohere", "smollm3", "lfm2"}
_UNTIED_BY_DEFAULT = {"llama", "mistral", "mixtral", "qwen2", "qwen2_moe", "qwen3", "qwen3_moe", "phi3", "gpt_neox",
                      "olmo2", "granite", "gptj"}
# Attention layer types ftplan models: softmax attention over the whole or a window of the sequence.
_ATTENTION_LAYER_TYPES = {"full_attention", "sliding_attention", "attention", "chunked_attention"}



def unmodelled_features(cfg: dict) -> list[str]:
    """Parts of an architecture ftplan's shape and activation formulas do not model, read from
    config.json's keys: each one would be counted wrong, so the model is refused, never guessed."""
    found = []
    if cfg.get("q_lora_rank") and not cfg.get("kv_lora_rank"):
        found.append("low-rank queries without latent keys and values (q_lora_rank without kv_lora_rank)")
    types = cfg.get("layer_types")
    modelled = _ATTENTION_LAYER_TYPES | ({"conv"} if cfg.get("model_type") in CONV_HYBRID_TYPES else set())
    if isinstance(types, list) and any(t not in modelled for t in types):
        other = sorted({str(t) for t in types if t not in modelled})
        found.append(f"hybrid layers ({', '.join(other)[:60]} beside attention)")
    if cfg.get("model_type") in CONV_HYBRID_TYPES and (cfg.get("num_experts") or cfg.get("num_local_experts")):
        found.append("hybrid layers with experts")
    for key in ("layers_block_type", "hybrid_override_pattern", "attn_layer_period", "block_types", "full_attention_interval"):
        if cfg.get(key):
            found.append(f"hybrid layers ({key})")
            break
    # Qwen2-MoE's gated shared expert (shared_expert_intermediate_size) and DeepSeek's ungated
    # ones (n_shared_experts x moe_intermediate_size) are modelled; other layouts are not
    for key in ("num_shared_experts", "moe_shared_expert_intermediate_size"):
        if cfg.get(key):
            found.append(f"shared experts ({key})")
            break
    if cfg.get("shared_expert_intermediate_size") and cfg.get("model_type") not in _SHARED_EXPERT_TYPES:
        found.append("shared experts (shared_expert_intermediate_size)")
    # dense first layers (first_k_dense_replace) are modelled; experts interleaved with dense layers are not
    if ((cfg.get("decoder_sparse_step") or 1) > 1 or cfg.get("mlp_only_layers")
            or (cfg.get("interleave_moe_layer_step") or 1) > 1 or (cfg.get("moe_layer_freq") or 1) != 1):
        found.append("experts in some layers and a dense MLP in others")
    return found


def spec_from_config(cfg: dict, name: str, path: str = "") -> ModelSpec:
    """A ModelSpec from a Hugging Face config.json dictionary, for any causal-LM layout that
    names its shapes with the usual keys (hidden_size/n_embd/d_model, …). Every field read is
    checked for its type and range; a config of a model that is not a causal LM is refused."""
    if not isinstance(cfg, dict):
        raise ModelError(f"{name}: config.json is not a JSON object; point --model at a model's config.json")
    archs = cfg.get("architectures")
    if archs is not None and (not isinstance(archs, list) or not all(isinstance(a, str) for a in archs)):
        raise ModelError(f"{name}: config.json's architectures must be a list of class names")
    if archs and not any(a.endswith(CAUSAL_HEADS) for a in archs):
        raise ModelError(f"{name}: {', '.join(archs)[:80]} is not a causal language model (no ...ForCausalLM head); "
                         f"ftplan plans decoder fine-tuning only")
    towers = [k.split("_")[0] for k in ("vision_config", "audio_config") if isinstance(cfg.get(k), dict)]
    if not towers and isinstance(cfg.get("text_config"), dict) and not any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in archs or []):
        towers = ["default vision"]  # transformers builds the multimodal class, tower and all, from the outer config
    if towers:
        raise ModelError(f"{name}: a multimodal model (a {' and '.join(towers)} tower beside the language model); ftplan "
                         f"plans text-only fine-tuning and does not count the tower's weights or activations: point --model "
                         f"at a config.json holding only the language model (its text_config)")
    if "text_config" in cfg and "hidden_size" not in cfg:
        text = cfg["text_config"]
        if not isinstance(text, dict):
            raise ModelError(f"{name}: config.json's text_config must be an object holding the language model's shapes")
        cfg = {**text, "model_type": text.get("model_type", cfg.get("model_type", ""))}
    model_type = cfg.get("model_type", "")
    if not isinstance(model_type, str):
        raise ModelError(f"{name}: config.json's model_type must be a string (got {model_type!r:.40})")
    types = cfg.get("layer_types")
    if types is not None and (not isinstance(types, list) or not all(isinstance(t, str) for t in types)):
        raise ModelError(f"{name}: config.json's layer_types must be a list of layer type names, one per layer")
    features = unmodelled_features(cfg)
    if features:
        raise ModelError(f"{name}: {model_type or 'this architecture'} has {'; '.join(features)}, which ftplan's memory model "
                         f"does not count; an estimate would be wrong, so it is refused. Plan a model without it "
                         f"(ftplan models lists the measured ones)")
    hidden = _whole(name, "hidden_size", _first(cfg, "hidden_size", "n_embd", "d_model"))
    layers = _whole(name, "num_hidden_layers", _first(cfg, "num_hidden_layers", "n_layer", "num_layers"))
    heads = _whole(name, "num_attention_heads", _first(cfg, "num_attention_heads", "n_head"))
    vocab = _whole(name, "vocab_size", _first(cfg, "vocab_size"))
    if heads > hidden and cfg.get("head_dim") is None:
        raise ModelError(f"{name}: config.json has {heads} attention heads on a hidden size of {hidden}; "
                         f"each head needs at least one dimension")

    if model_type == "falcon":
        kv = heads if cfg.get("new_decoder_architecture") else (1 if cfg.get("multi_query", True) else heads)
        kv = _whole(name, "num_kv_heads", cfg.get("num_kv_heads") or kv) if cfg.get("new_decoder_architecture") else kv
        inter = _whole(name, "ffn_hidden_size", cfg.get("ffn_hidden_size") or 4 * hidden)
        norms = 2 if cfg.get("new_decoder_architecture") else (1 if cfg.get("parallel_attn", True) else 2)
        extra = dict(mlp="plain", norm="layernorm", norms_per_layer=norms,
                     qkv_bias=bool(cfg.get("bias")), o_bias=bool(cfg.get("bias")), mlp_bias=bool(cfg.get("bias")))
        tied = bool(cfg.get("tie_word_embeddings", True))
    elif model_type in ("gpt_neox", "gpt2", "gptj"):
        kv = heads
        inter = _whole(name, "intermediate_size", _first(cfg, "intermediate_size", "n_inner", default=4 * hidden) or 4 * hidden)
        extra = dict(mlp="plain", norm="layernorm", qkv_bias=True, o_bias=True, mlp_bias=True)
        tied = bool(cfg.get("tie_word_embeddings", model_type in _TIED_BY_DEFAULT))
    else:
        kv = _whole(name, "num_key_value_heads", _first(cfg, "num_key_value_heads", default=heads))
        inter = _whole(name, "intermediate_size", _first(cfg, "intermediate_size", default=4 * hidden))
        if kv > heads or heads % kv:
            raise ModelError(f"{name}: config.json has {kv} key-value heads for {heads} attention heads; "
                             f"the attention heads must be a multiple of them")
        extra = dict(
            norms_per_layer=4 if model_type in _FOUR_NORM_TYPES else 2,
            qkv_bias=bool(cfg.get("attention_bias", model_type in ("qwen2", "qwen2_moe"))),
            o_bias=bool(cfg.get("attention_bias", False)) and model_type not in ("qwen2", "qwen2_moe"),
            mlp_bias=bool(cfg.get("mlp_bias", False)),
            qk_norm=model_type in _QK_NORM_TYPES,
        )
        tied = bool(cfg.get("tie_word_embeddings", model_type not in _UNTIED_BY_DEFAULT))
    if model_type in CONV_HYBRID_TYPES:
        inter, conv = _short_convolutions(cfg, name, layers)
        extra.update(conv, qk_norm=True)
    head_dim = _whole(name, "head_dim", cfg.get("head_dim") or max(1, hidden // heads))
    latent = _latent_attention(cfg, name)
    if latent:
        head_dim = latent.pop("head_dim")
    experts = _whole(name, "num_experts", _first(cfg, "num_local_experts", "num_experts", "n_routed_experts", default=0) or 0)
    moe = {}
    if experts:
        per_token = _whole(name, "num_experts_per_tok", _first(cfg, "num_experts_per_tok", default=min(2, experts)))
        if per_token > experts:
            raise ModelError(f"{name}: config.json routes each token to {per_token} of {experts} experts; "
                             f"num_experts_per_tok must be at most num_experts")
        moe = dict(num_experts=experts, experts_per_token=per_token,
                   moe_intermediate_size=_whole(name, "moe_intermediate_size", _first(cfg, "moe_intermediate_size", default=inter)))
        if model_type in _SHARED_EXPERT_TYPES and cfg.get("shared_expert_intermediate_size"):
            moe["shared_intermediate_size"] = _whole(name, "shared_expert_intermediate_size", cfg["shared_expert_intermediate_size"])
        if cfg.get("n_shared_experts"):  # DeepSeek's: one MLP of n x moe_intermediate_size, added ungated
            shared = _whole(name, "n_shared_experts", cfg["n_shared_experts"])
            moe.update(shared_intermediate_size=shared * moe["moe_intermediate_size"], shared_expert_gated=False)
        if cfg.get("first_k_dense_replace"):
            moe["dense_layers"] = min(layers, _whole(name, "first_k_dense_replace", cfg["first_k_dense_replace"]))
    return ModelSpec(
        name=name, family=_FAMILY_BY_MODEL_TYPE.get(model_type, model_type or "unknown"),
        hidden_size=hidden, num_layers=layers, num_heads=heads, num_kv_heads=kv, head_dim=head_dim,
        intermediate_size=inter, vocab_size=vocab, tied_embeddings=tied, path=path,
        source=f"config.json ({model_type or 'unknown model_type'})", **extra, **moe, **latent,
    )


def _short_convolutions(cfg: dict, name: str, layers: int) -> tuple[int, dict]:
    """An LFM2 config's MLP width and its convolution layers (configuration_lfm2.py, modeling_lfm2.py):
    layer_types, or the attention layers' indices (full_attn_idxs; all attention where neither
    is given); block_ff_dim (or intermediate_size) taken to two thirds, times
    block_ffn_dim_multiplier, up to a multiple of block_multiple_of where block_auto_adjust_ff_dim."""
    types = cfg.get("layer_types")
    if not isinstance(types, list):
        attention = cfg.get("full_attn_idxs")
        attention = range(layers) if attention is None else attention
        if not isinstance(attention, list | range) or not all(isinstance(i, int) for i in attention):
            raise ModelError(f"{name}: config.json's full_attn_idxs must be a list of layer indices")
        types = ["full_attention" if i in attention else "conv" for i in range(layers)]
    if len(types) != layers:
        raise ModelError(f"{name}: config.json's layer_types lists {len(types)} layers for num_hidden_layers {layers}; "
                         f"give one type per layer")
    inter = _whole(name, "intermediate_size", _first(cfg, "block_ff_dim", "intermediate_size", default=12288))
    if cfg.get("block_auto_adjust_ff_dim", True):
        inter = int(2 * inter / 3)
        multiplier = cfg.get("block_ffn_dim_multiplier", 1.0)
        if multiplier is not None and (isinstance(multiplier, bool) or not isinstance(multiplier, int | float)
                                       or not 0 < multiplier < 1_000):
            raise ModelError(f"{name}: config.json's block_ffn_dim_multiplier is {multiplier!r:.40}; it must be a "
                             f"positive number")
        if multiplier is not None:
            multiple = _whole(name, "block_multiple_of", cfg.get("block_multiple_of", 256))
            inter = multiple * ((int(multiplier * inter) + multiple - 1) // multiple)
    kernel = _whole(name, "conv_L_cache", cfg.get("conv_L_cache", 3))
    return inter, dict(conv_layers=types.count("conv"), conv_kernel=kernel, conv_bias=bool(cfg.get("conv_bias", False)))


# transformers' defaults for the latent attention's head widths (configuration_deepseek_v2.py, _v3.py)
_LATENT_HEAD_DEFAULTS = {"qk_nope_head_dim": 128, "qk_rope_head_dim": 64, "v_head_dim": 128}


def _latent_attention(cfg: dict, name: str) -> dict:
    """A latent-attention config's fields of ModelSpec (with head_dim: a query/key head's width,
    its unrotated and rotated parts), or {} for a model without it."""
    if not cfg.get("kv_lora_rank"):
        return {}
    widths = {k: _whole(name, k, cfg.get(k) or default) for k, default in _LATENT_HEAD_DEFAULTS.items()}
    return dict(kv_lora_rank=_whole(name, "kv_lora_rank", cfg["kv_lora_rank"]),
                q_lora_rank=_whole(name, "q_lora_rank", cfg["q_lora_rank"]) if cfg.get("q_lora_rank") else 0,
                qk_rope_head_dim=widths["qk_rope_head_dim"], v_head_dim=widths["v_head_dim"],
                head_dim=widths["qk_nope_head_dim"] + widths["qk_rope_head_dim"])


def _load_config_file(path: Path, name: str, trust_remote_code: bool = False) -> ModelSpec:
    try:
        cfg = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ModelError(f"{path}: malformed config.json (line {e.lineno}: {e.msg}); fix the file or pass a catalog name") from None
    except UnicodeDecodeError as e:
        raise ModelError(f"{path}: config.json is not UTF-8 text (byte {e.start}); save it as UTF-8 JSON") from None
    except (RecursionError, ValueError) as e:  # nesting too deep, an integer too long to read
        raise ModelError(f"{path}: config.json cannot be read as a model config ({str(e)[:80]})") from None
    except OSError as e:
        raise ModelError(f"{path}: cannot read config.json ({e.strerror or e})") from None
    return derive(spec_from_config(cfg, name, str(path.parent)), cfg, trust_remote_code)


def derive(spec: ModelSpec, cfg: dict, trust_remote_code: bool = False) -> ModelSpec:
    """Check a config's ModelSpec against the model's own code (planner/inventory.py) where
    torch, transformers and peft are installed: tying, sdpa support and, for an architecture
    without a module table, its layer names come from the built model; a disagreement with
    the shape formulas refuses the model. Without those libraries only the families ftplan
    has a table for can be planned."""
    from planner import inventory

    if cfg.get("auto_map") and not trust_remote_code and spec.family not in _KNOWN_FAMILIES:
        raise ModelError(f"{spec.name}: {cfg.get('model_type') or 'this model'} ships its own modelling code (auto_map); "
                         f"pass --trust-remote-code to build it from that code (it runs the code in the model's directory)")
    if not inventory.available():
        if family_table(spec.family) is None:
            raise ModelError(f"{spec.name}: ftplan has no layout for the {spec.family!r} architecture; install torch, "
                             f"transformers and peft (pip install 'ftplan[train]') so it reads the layers from the model's code")
        return spec
    try:
        inv = inventory.cached(cfg, spec.path, trust_remote_code)
    except ModelError as e:
        raise ModelError(f"{spec.name}: {e}") from None
    except Exception as e:  # the model's own code failed to build: say so, in one line
        raise ModelError(f"{spec.name}: transformers could not build this config ({type(e).__name__}: {str(e)[:100]}); "
                         f"fix the config or plan a catalog model") from None
    known = family_table(spec.family) is not None
    spec = replace(spec, tied_embeddings=inv.tied_embeddings, sdpa=inv.sdpa, flex=inv.flex, bnb_linear_params=inv.quantized_params,
                   logit_scale=inv.logit_scale, logit_softcap=inv.logit_softcap,
                   derived_from=f"{inv.architecture} built on the meta device by {inv.versions}: {inv.total_params:,} parameters")
    if not known:
        unknown = [m for m in inv.attention_modules + inv.mlp_modules if m not in MODULE_NAMES]
        if unknown or not inv.attention_modules:
            raise ModelError(f"{spec.name}: {inv.architecture}'s layers ({', '.join(unknown or ['no attention projections'])[:80]}) "
                             f"are not ones ftplan models; an estimate would be a guess, so it is refused")
        spec = replace(spec, attention_modules=inv.attention_modules, mlp_modules=inv.mlp_modules,
                       mlp_lora_moves_to_experts=inv.mlp_lora_moves_to_experts)
    why = inventory.disagreement(spec, inv)
    if spec.is_moe and not inventory.experts_agree(spec, inv):
        spec = replace(spec, expert_parameters=())  # --targets experts is refused (ModelSpec.target_parameters)
    from planner import evidence

    # An architecture not measured on a GPU: its activation formula is held to a census of its
    # own layers. Not a LayerNorm model's: the CPU runs LayerNorm in bf16 under autocast where
    # CUDA runs it in fp32, so the CPU's census is not the GPU's.
    census_held = evidence.measured_row(spec) is None and spec.norm != "layernorm"
    if not why and census_held:
        why = activation_disagreement(spec, inv, cfg) if inv.census else \
            "its layers could not be built at a small width to count what they save for backward"
    if why:
        raise ModelError(f"{spec.name}: {why}; refused rather than estimated wrong")
    if census_held:
        spec = replace(spec, derived_from=spec.derived_from + "; its activations agree with a census of its layers")
    return spec


ACTIVATION_TOLERANCE = 0.05


def activation_disagreement(spec: ModelSpec, inv, cfg: dict) -> str:
    """Why planner/memory.py's activation formula and the census of the model's own code
    (Inventory.census) disagree by more than ACTIVATION_TOLERANCE on the same small model,
    or "" when they agree."""
    from planner import census, memory
    from planner.plan import Plan

    small = replace(spec_from_config(census.small_config(cfg, 3), spec.name),
                    attention_modules=spec.attention_modules, mlp_modules=spec.mlp_modules, tied_embeddings=spec.tied_embeddings,
                    mlp_lora_moves_to_experts=spec.mlp_lora_moves_to_experts)
    groups = [group for _, group in small.layer_groups()]
    for key, counted in inv.census.items():
        method, _, kind = key.partition("@")
        # the census counts the third layer: a convolution layer where it asked for one (planner/census.py
        # layer_kinds), else the last kind of attention layer (a MoE one where the first are dense)
        layer = next((g for g in groups if g.conv_layer), None) if kind == "conv" else \
            [g for g in groups if not g.conv_layer][-1]
        if layer is None:
            return f"its census counted a {kind} layer where ftplan's layout has none"
        plan = Plan(model=spec.name, method=method, seq_len=census.TOKENS[0][1], compile=False)
        formula = memory.layer_activation_bytes_per_token(layer, plan, device="cpu")
        if abs(formula - counted) > ACTIVATION_TOLERANCE * counted:
            return (f"one {inv.architecture} {kind + ' ' if kind else ''}layer saves {counted:,.0f} B per token for backward ({method}, counted on "
                    f"the CPU at a small width) where ftplan's activation formula gives {formula:,}: its layers keep "
                    f"tensors ftplan does not model")
    return ""


# ---------------------------------------------------------------------- bare sizes
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([bBmM])\s*$")


def generic_spec(size: str) -> ModelSpec:
    """A Llama-shaped model of about `size` parameters ("7B", "500M"): the generic ladder's
    nearest shape (knowledge/models.toml [[generic]]) with its layer count scaled to the size."""
    m = _SIZE.match(size)
    assert m
    target = float(m.group(1)) * (1e9 if m.group(2).lower() == "b" else 1e6)
    if not 50e6 <= target <= 2e12:
        raise ModelError(f"model size {size} is outside 50M to 2000B; give a size such as 7B or 500M")
    ladder = sorted(knowledge.rows("models", "generic"), key=lambda r: r["params_b"])
    row = min(ladder, key=lambda r: abs(math.log(r["params_b"] * 1e9 / target)))
    base = ModelSpec(
        name=f"generic-{size.strip().upper()}", family="llama", hidden_size=row["hidden_size"],
        num_layers=1, num_heads=row["num_heads"], num_kv_heads=row["num_kv_heads"],
        head_dim=row["hidden_size"] // row["num_heads"], intermediate_size=row["intermediate_size"],
        vocab_size=row["vocab_size"], tied_embeddings=False, source=row["source"],
    )
    fixed = base.embedding_params() + base.norm_params()
    layers = max(1, round((target - fixed) / base.layer_params()))
    return replace(base, num_layers=layers)


# ---------------------------------------------------------------------- resolution
def resolve(model: str, offline: bool | None = None, trust_remote_code: bool = False) -> ModelSpec:
    """Turn --model into a ModelSpec: catalog name, local dir or config.json, bare size, Hub id.
    A config outside the catalog is checked against the model's own code (derive)."""
    if not model or not model.strip():
        raise ModelError("--model is empty; give a catalog name (ftplan models), a local path, a Hub id or a size like 7B")
    spec = find_in_catalog(model)
    if spec:
        return spec
    path, kind = _local(model)
    if kind == "dir":
        cfg = path / "config.json"
        if not cfg.is_file():
            raise ModelError(f"{path} has no config.json; point --model at a Hugging Face model directory")
        return _load_config_file(cfg, path.name, trust_remote_code)
    if kind == "file":
        return _load_config_file(path, path.parent.name or path.stem, trust_remote_code)
    if _SIZE.match(model):
        return generic_spec(model)
    if re.fullmatch(r"[\w.\-]+/[\w.\-]+", model) and not model.startswith((".", "/")):
        return _from_hub(model, offline, trust_remote_code)
    hint = suggestions(model)
    also = f"; did you mean {', '.join(hint)}?" if hint else "; run 'ftplan models' for the catalog"
    raise ModelError(f"unknown model {model!r}: not in the catalog, not a path, not a size like 7B{also}")


def _local(text: str) -> tuple[Path, str]:
    """(path, "dir" | "file" | "") for --model: a name too long for the filesystem, with a NUL
    or a ~user that does not exist is simply not a local path."""
    try:
        path = Path(text).expanduser()
    except RuntimeError:  # ~name with no such user or home
        path = Path(text)
    try:
        return path, "dir" if path.is_dir() else "file" if path.is_file() else ""
    except (OSError, ValueError):
        return path, ""


def _from_hub(repo_id: str, offline: bool | None, trust_remote_code: bool = False) -> ModelSpec:
    """Fetch only config.json from the Hub (huggingface_hub, imported here so the planner's
    start-up never pays for it)."""
    import os

    if offline is None:
        offline = os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0") or os.environ.get("FTPLAN_OFFLINE", "") not in ("", "0")
    suggestion = f"download its config.json and pass the local path (--model ./{repo_id.split('/')[-1]}/config.json)"
    if offline:
        raise ModelError(f"{repo_id} is not in the catalog and the Hub is offline; {suggestion}")
    try:
        from huggingface_hub import hf_hub_download
    except ImportError:
        raise ModelError(f"{repo_id}: reading a Hub id needs huggingface_hub (pip install huggingface_hub); or {suggestion}") from None
    try:
        cfg_path = hf_hub_download(repo_id, "config.json")
    except Exception as e:  # network errors, 401/404: all end in the same advice
        reason = type(e).__name__
        raise ModelError(f"{repo_id}: could not fetch config.json from the Hub ({reason}); {suggestion}") from None
    spec = _load_config_file(Path(cfg_path), repo_id, trust_remote_code)
    return replace(spec, hub_id=repo_id, path="")
