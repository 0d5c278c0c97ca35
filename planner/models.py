"""Model architectures: the catalog, Hugging Face config.json files, Hub ids and bare sizes
("7B"), resolved to one ModelSpec, and the parameter counts derived from its shape."""

from __future__ import annotations

import difflib
import json
import math
import re
from dataclasses import dataclass, replace
from pathlib import Path

from planner import knowledge
from planner.errors import ModelError

# The linear layers whose shapes ftplan knows (ModelSpec.module_shape).
MODULE_NAMES = ("q_proj", "k_proj", "v_proj", "o_proj", "qkv_proj", "query_key_value", "dense", "gate_proj", "up_proj",
                "down_proj", "gate_up_proj", "dense_h_to_4h", "dense_4h_to_h", "fc1", "fc2", "c_attn", "c_proj", "c_fc")


@dataclass(frozen=True)
class ModelSpec:
    name: str
    family: str
    hidden_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    intermediate_size: int
    vocab_size: int
    tied_embeddings: bool
    mlp: str = "gated"            # "gated" (gate/up/down) or "plain" (up/down)
    norm: str = "rmsnorm"         # "layernorm" carries a bias
    norms_per_layer: int = 2
    qkv_bias: bool = False
    o_bias: bool = False
    mlp_bias: bool = False
    qk_norm: bool = False
    num_experts: int = 0
    experts_per_token: int = 0
    moe_intermediate_size: int = 0
    shared_intermediate_size: int = 0  # a shared expert every token passes through, gated per token (Qwen2-MoE)
    hub_id: str = ""
    path: str = ""                # local directory or config.json it came from
    published_params: int = 0
    source: str = ""
    # Read from the model's own code (planner/inventory.py) where the config is not a catalog family:
    attention_modules: tuple[str, ...] = ()   # LoRA target names of the attention projections
    mlp_modules: tuple[str, ...] = ()         # and of the feed-forward (dense) linear layers
    derived_from: str = ""                    # how transformers' own build of the config was read
    sdpa: bool = True                         # transformers runs this architecture with sdpa
    flex: bool = True                         # and with FlexAttention (knowledge/targets.toml `flex` for a family)

    # ------------------------------------------------------------------ widths
    @property
    def q_width(self) -> int:
        return self.num_heads * self.head_dim

    @property
    def kv_width(self) -> int:
        return self.num_kv_heads * self.head_dim

    @property
    def is_moe(self) -> bool:
        return self.num_experts > 0

    # ------------------------------------------------------------------ parameter counts
    def embedding_params(self) -> int:
        """Input embedding plus an untied lm_head."""
        per_matrix = self.vocab_size * self.hidden_size
        return per_matrix if self.tied_embeddings else 2 * per_matrix

    def attention_params_per_layer(self) -> int:
        h, q, kv = self.hidden_size, self.q_width, self.kv_width
        weights = h * q + 2 * h * kv + q * h
        biases = (q + 2 * kv if self.qkv_bias else 0) + (h if self.o_bias else 0)
        qk_norms = 2 * self.head_dim if self.qk_norm else 0
        return weights + biases + qk_norms

    def mlp_params(self, intermediate: int) -> int:
        """One feed-forward block of width `intermediate`."""
        h = self.hidden_size
        if self.mlp == "gated":
            return 3 * h * intermediate + ((2 * intermediate + h) if self.mlp_bias else 0)
        return 2 * h * intermediate + ((intermediate + h) if self.mlp_bias else 0)

    def mlp_params_per_layer(self) -> int:
        if self.is_moe:
            router = self.hidden_size * self.num_experts
            return self.num_experts * self.mlp_params(self.moe_intermediate_size) + router + self.shared_expert_params()
        return self.mlp_params(self.intermediate_size)

    def shared_expert_params(self) -> int:
        """The shared expert's MLP and its gate, a linear layer to one logit (transformers
        modeling_qwen2_moe: shared_expert, shared_expert_gate)."""
        if not self.shared_intermediate_size:
            return 0
        return self.mlp_params(self.shared_intermediate_size) + self.hidden_size

    def norm_params(self) -> int:
        return self.hidden_size * (2 if self.norm == "layernorm" else 1)

    def layer_params(self) -> int:
        return (
            self.attention_params_per_layer()
            + self.mlp_params_per_layer()
            + self.norms_per_layer * self.norm_params()
        )

    def total_params(self) -> int:
        """All parameters: blocks, embeddings (tied counted once) and the final norm."""
        return self.num_layers * self.layer_params() + self.embedding_params() + self.norm_params()

    def active_params(self) -> int:
        """Parameters one token passes through (MoE: only its experts)."""
        if not self.is_moe:
            return self.total_params()
        unused = (self.num_experts - self.experts_per_token) * self.mlp_params(self.moe_intermediate_size)
        return self.total_params() - self.num_layers * unused

    def linear_params(self) -> int:
        """Weights of the blocks' linear layers, experts included: the matmul FLOPs of a token
        that passed through every expert."""
        h, q, kv = self.hidden_size, self.q_width, self.kv_width
        attn = h * q + 2 * h * kv + q * h
        if self.is_moe:
            per_expert = (3 if self.mlp == "gated" else 2) * h * self.moe_intermediate_size
            mlp = self.num_experts * per_expert + self.shared_expert_params()  # the shared expert's layers are nn.Linear
        else:
            mlp = (3 if self.mlp == "gated" else 2) * h * self.intermediate_size
        return self.num_layers * (attn + mlp)

    def expert_params(self) -> int:
        """Fused expert weights (3-D parameters in transformers 5, not nn.Linear)."""
        if not self.is_moe:
            return 0
        return self.num_layers * self.num_experts * (3 if self.mlp == "gated" else 2) * self.hidden_size * self.moe_intermediate_size

    def quantized_params(self) -> int:
        """Weights bitsandbytes stores in 4 bits: the blocks' nn.Linear layers. transformers 5
        fuses MoE experts into 3-D parameters, which its bnb integration leaves in bf16
        (measured on the H200: 705 MB of a Mixtral-shaped model's 861 MB stayed bf16;
        docs/guides.md#mixture-of-experts)."""
        return self.linear_params() - self.expert_params()

    def active_linear_params(self) -> int:
        """Linear weights one token multiplies by: the experts it is routed to, not all of them."""
        if not self.is_moe:
            return self.linear_params()
        return self.linear_params() - self.expert_params() * (self.num_experts - self.experts_per_token) // self.num_experts

    # ------------------------------------------------------------------ module shapes
    def module_shape(self, name: str) -> tuple[int, int, int]:
        """(in_features, out_features, copies per layer) of a named linear layer."""
        h, q, kv, i = self.hidden_size, self.q_width, self.kv_width, self.intermediate_size
        if self.is_moe:  # the only MLP linear layers of a MoE block are its shared expert's
            i = self.shared_intermediate_size
        shapes = {
            "q_proj": (h, q), "k_proj": (h, kv), "v_proj": (h, kv), "o_proj": (q, h),
            "qkv_proj": (h, q + 2 * kv), "query_key_value": (h, q + 2 * kv), "dense": (q, h),
            "gate_proj": (h, i), "up_proj": (h, i), "down_proj": (i, h), "gate_up_proj": (h, 2 * i),
            "dense_h_to_4h": (h, i), "dense_4h_to_h": (i, h), "fc1": (h, i), "fc2": (i, h),
            "c_attn": (h, q + 2 * kv), "c_proj": (q, h), "c_fc": (h, i),
            "shared_expert_gate": (h, 1),
        }
        if name not in shapes:
            raise ModelError(
                f"{self.name} has no linear layer named {name!r}; use --targets attention, "
                f"all-linear, or a comma list of {', '.join(self.target_modules('all-linear'))}"
            )
        fan_in, fan_out = shapes[name]
        return fan_in, fan_out, 1

    def target_modules(self, targets: str) -> list[str]:
        """Module names for 'attention', 'all-linear' or a comma-separated list."""
        fam = self.modules_table()
        if targets == "attention":
            return list(fam["attention"])
        if targets == "all-linear":
            return list(fam["attention"]) + self._mlp_linears(fam)
        names = [t.strip() for t in targets.split(",") if t.strip()]
        if not names:
            raise ModelError("--targets is empty; use attention, all-linear or a comma list of module names")
        known = set(fam["attention"]) | set(self._mlp_linears(fam))
        for n in names:
            if n not in known:
                raise ModelError(
                    f"{self.name} has no linear layer named {n!r}; use --targets attention, all-linear, "
                    f"or a comma list of {', '.join(sorted(known))}"
                )
        return names

    def _mlp_linears(self, fam: dict) -> list[str]:
        """The feed-forward nn.Linear layers LoRA can wrap. MoE experts are fused 3-D parameters
        in transformers 5, not nn.Linear: a MoE block offers only its shared expert's layers
        and their gate, where it has one."""
        if not self.is_moe:
            return list(fam["mlp"])
        return (list(fam["mlp"]) + ["shared_expert_gate"]) if self.shared_intermediate_size else []

    def lora_params(self, modules: list[str], rank: int, dora: bool = False) -> int:
        """LoRA's trainable parameters on the named modules of every block: r x (in + out) per
        adapted linear (Hu et al. 2021, eq. 3); DoRA adds a magnitude vector of `out` per layer
        (Liu et al. 2024, eq. 5)."""
        total = 0
        for m in modules:
            fan_in, fan_out, copies = self.module_shape(m)
            total += (rank * (fan_in + fan_out) + (fan_out if dora else 0)) * copies
        return total * self.num_layers

    def modules_table(self) -> dict:
        """The family's row of knowledge/targets.toml, or the module names read from the
        model's own code; never another family's names."""
        if self.attention_modules:
            return {"name": self.family, "attention": list(self.attention_modules), "mlp": list(self.mlp_modules)}
        row = family_table(self.family)
        if row is None:
            raise ModelError(f"{self.name}: ftplan has no module table for the {self.family!r} architecture and could not "
                             f"read one from its code; install torch and transformers (pip install 'ftplan[train]') "
                             f"so ftplan builds the model on the meta device and reads its layers")
        return row

    def as_dict(self) -> dict:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__}
        d["total_params"] = self.total_params()
        return d


# ---------------------------------------------------------------------- families
def family_table(family: str) -> dict | None:
    """knowledge/targets.toml's row for a family, or None where there is none."""
    for row in knowledge.rows("targets", "family"):
        if row["name"] == family:
            return row
    return None


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
                 "moe_intermediate_size": (1, 10_000_000), "shared_expert_intermediate_size": (1, 10_000_000), "ffn_hidden_size": (1, 10_000_000), "num_kv_heads": (1, 100_000)}
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
_TIED_BY_DEFAULT = {"gemma", "gemma2", "gemma3", "gemma3_text", "falcon", "gpt2", "starcoder2", "cohere", "smollm3"}
_UNTIED_BY_DEFAULT = {"llama", "mistral", "mixtral", "qwen2", "qwen2_moe", "qwen3", "qwen3_moe", "phi3", "gpt_neox",
                      "olmo2", "granite", "gptj"}
# Attention layer types ftplan models: softmax attention over the whole or a window of the sequence.
_ATTENTION_LAYER_TYPES = {"full_attention", "sliding_attention", "attention", "chunked_attention"}


def unmodelled_features(cfg: dict) -> list[str]:
    """Parts of an architecture ftplan's shape and activation formulas do not model, read from
    config.json's keys: each one would be counted wrong, so the model is refused, never guessed."""
    found = []
    if cfg.get("kv_lora_rank") or cfg.get("q_lora_rank"):
        found.append("multi-head latent attention (kv_lora_rank: low-rank compressed keys and values)")
    types = cfg.get("layer_types")
    if isinstance(types, list) and any(t not in _ATTENTION_LAYER_TYPES for t in types):
        other = sorted({str(t) for t in types if t not in _ATTENTION_LAYER_TYPES})
        found.append(f"hybrid layers ({', '.join(other)[:60]} beside attention)")
    for key in ("layers_block_type", "hybrid_override_pattern", "attn_layer_period", "block_types", "full_attention_interval"):
        if cfg.get(key):
            found.append(f"hybrid layers ({key})")
            break
    # Qwen2-MoE's shared expert (shared_expert_intermediate_size) is modelled; other layouts of
    # shared experts (DeepSeek's n_shared_experts, ...) are not
    for key in ("n_shared_experts", "num_shared_experts", "moe_shared_expert_intermediate_size"):
        if cfg.get(key):
            found.append(f"shared experts ({key})")
            break
    if cfg.get("shared_expert_intermediate_size") and cfg.get("model_type") not in _SHARED_EXPERT_TYPES:
        found.append("shared experts (shared_expert_intermediate_size)")
    if (cfg.get("first_k_dense_replace") or (cfg.get("decoder_sparse_step") or 1) > 1 or cfg.get("mlp_only_layers")
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
    head_dim = _whole(name, "head_dim", cfg.get("head_dim") or max(1, hidden // heads))
    experts = _whole(name, "num_experts", _first(cfg, "num_local_experts", "num_experts", default=0) or 0)
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
    return ModelSpec(
        name=name, family=_FAMILY_BY_MODEL_TYPE.get(model_type, model_type or "unknown"),
        hidden_size=hidden, num_layers=layers, num_heads=heads, num_kv_heads=kv, head_dim=head_dim,
        intermediate_size=inter, vocab_size=vocab, tied_embeddings=tied, path=path,
        source=f"config.json ({model_type or 'unknown model_type'})", **extra, **moe,
    )


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
    spec = replace(spec, tied_embeddings=inv.tied_embeddings, sdpa=inv.sdpa, flex=inv.flex,
                   derived_from=f"{inv.architecture} built on the meta device by {inv.versions}: {inv.total_params:,} parameters")
    if not known:
        unknown = [m for m in inv.attention_modules + inv.mlp_modules if m not in MODULE_NAMES]
        if unknown or not inv.attention_modules:
            raise ModelError(f"{spec.name}: {inv.architecture}'s layers ({', '.join(unknown or ['no attention projections'])[:80]}) "
                             f"are not ones ftplan models; an estimate would be a guess, so it is refused")
        spec = replace(spec, attention_modules=inv.attention_modules, mlp_modules=inv.mlp_modules)
    why = inventory.disagreement(spec, inv)
    from planner import evidence

    # An architecture not measured on a GPU: its activation formula is held to a census of its
    # own layers. Not a LayerNorm model's: the CPU runs LayerNorm in bf16 under autocast where
    # CUDA runs it in fp32, so the CPU's census is not the GPU's.
    counted = evidence.measured_row(spec) is None and spec.norm != "layernorm"
    if not why and counted:
        why = inventory.activation_disagreement(spec, inv, cfg) if inv.census else \
            "its layers could not be built at a small width to count what they save for backward"
    if why:
        raise ModelError(f"{spec.name}: {why}; refused rather than estimated wrong")
    if counted:
        spec = replace(spec, derived_from=spec.derived_from + "; its activations agree with a census of its layers")
    return spec


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
