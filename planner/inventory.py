"""An architecture read from the model's own code: transformers builds the model from its
config on the meta device (no memory, no weights) and PEFT adapts it, and we count what they
made. This is how a config.json outside the measured families is checked before ftplan
estimates it: its parameter count and its LoRA trainable count must agree with what
planner/models.py derives from the shape, or the model is refused.

torch, transformers and peft are imported here only, lazily: the catalog path never pays."""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from planner.errors import ModelError

# Relative agreement ftplan requires between its shape formulas and the built model.
PARAMS_TOLERANCE = 0.01
LORA_TOLERANCE = 0.02
CACHE_FORMAT = 8


@dataclass(frozen=True)
class Inventory:
    """What the built model holds."""

    architecture: str                 # the class transformers built
    total_params: int
    attention_modules: tuple[str, ...]  # names of the linear layers inside the blocks' attention
    mlp_modules: tuple[str, ...]        # the other linear layers of the blocks (routers left out)
    tied_embeddings: bool
    sdpa: bool                        # the class declares sdpa support
    flex: bool                        # and FlexAttention support
    lora_params: dict[str, int] = field(default_factory=dict)  # PEFT's trainable count per target list
    versions: str = ""
    # one layer's saved bytes per token at planner/census.py's small width, per method (lora on
    # all linear layers, full) and, for a hybrid, per kind of layer ("lora@conv"); empty where the
    # census was not taken
    census: dict[str, float] = field(default_factory=dict)
    # weights of the layers transformers' bitsandbytes integration converts to 4 bits (-1: not counted)
    quantized_params: int = -1
    logit_scale: float = 1.0          # the config's transform of the logits (ModelSpec.logit_scale)
    logit_softcap: float = 0.0
    # PEFT, asked for the blocks' MLP names, adapted the fused experts instead (ModelSpec.mlp_lora_moves_to_experts)
    mlp_lora_moves_to_experts: bool = False
    # the blocks' 3-D weights (fused experts), as PEFT's target_parameters name them; their LoRA
    # count is lora_params["experts"]
    expert_parameters: tuple[str, ...] = ()


def available() -> bool:
    """Whether torch, transformers and peft are installed (found, not imported: that is slow)."""
    import importlib.util

    return all(importlib.util.find_spec(name) is not None for name in ("torch", "transformers", "peft"))


def _cache_file(cfg: dict, trust_remote_code: bool, rank: int) -> Path | None:
    """Where a built inventory is kept, keyed by the config and the library versions, so a
    config is built once per installation (the build imports torch: seconds)."""
    import hashlib
    from importlib import metadata

    try:
        versions = [metadata.version(n) for n in ("torch", "transformers", "peft")]
    except metadata.PackageNotFoundError:
        return None
    key = json.dumps([cfg, trust_remote_code, rank, versions, CACHE_FORMAT], sort_keys=True, default=str)
    root = Path(os.environ.get("FTPLAN_CACHE") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ftplan")
    return root / "inventory" / f"{hashlib.sha256(key.encode()).hexdigest()[:32]}.json"


def cached(cfg: dict, path: str = "", trust_remote_code: bool = False, rank: int = 16) -> Inventory:
    """build(), read from the cache when this config was built before with these libraries."""
    import dataclasses

    file = None if cfg.get("auto_map") else _cache_file(cfg, trust_remote_code, rank)
    if file is not None:
        try:
            raw = json.loads(file.read_text())
            for key in ("attention_modules", "mlp_modules", "expert_parameters"):
                raw[key] = tuple(raw[key])
            return Inventory(**raw)
        except (OSError, ValueError, TypeError, KeyError):
            pass
    inv = build(cfg, path, trust_remote_code, rank)
    if file is not None:
        try:
            file.parent.mkdir(parents=True, exist_ok=True)
            tmp = file.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(dataclasses.asdict(inv)))
            tmp.replace(file)
        except OSError:
            pass  # a read-only home: build again next time
    return inv


def _config(cfg: dict, path: str, trust_remote_code: bool):
    from transformers import AutoConfig

    if cfg.get("auto_map") and trust_remote_code and path:
        return AutoConfig.from_pretrained(path, trust_remote_code=True)
    known = dict(cfg)
    model_type = known.pop("model_type", "")
    try:
        config = AutoConfig.for_model(model_type, **known)
    except (ValueError, KeyError) as e:
        if cfg.get("auto_map"):
            raise ModelError(f"{model_type or 'this model'} ships its own modelling code (auto_map); pass --trust-remote-code "
                             f"to build it from that code (it runs the code in the model's directory)") from None
        raise ModelError(f"transformers does not know the architecture {model_type!r} ({str(e)[:80]}); "
                         f"upgrade transformers or plan a supported model") from None
    return config


def build(cfg: dict, path: str = "", trust_remote_code: bool = False, rank: int = 16) -> Inventory:
    """Build the model of `cfg` on the meta device and count its parameters and PEFT's LoRA
    for its attention layers and for all of its blocks' linear layers. transformers' own log
    is silenced meanwhile: its notes on the config (a key a config class declines at the
    census's small width, a token id outside the vocabulary) are not the user's to read, and
    a build that fails raises, which derive() reports in one line."""
    import logging
    import warnings

    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity(hf_logging.CRITICAL)
    bnb = logging.getLogger("bitsandbytes")  # PEFT imports it; on some CPUs it notes a kernel it could not load
    bnb_level = bnb.level
    bnb.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return _build(cfg, path, trust_remote_code, rank)
    finally:
        hf_logging.set_verbosity(verbosity)
        bnb.setLevel(bnb_level)


def _build(cfg: dict, path: str, trust_remote_code: bool, rank: int) -> Inventory:
    import torch
    import transformers
    from transformers import AutoModelForCausalLM

    config = _config(cfg, path, trust_remote_code)
    try:
        with torch.device("meta"):
            model = AutoModelForCausalLM.from_config(config, trust_remote_code=trust_remote_code)
    except ValueError as e:
        raise ModelError(f"transformers cannot build {type(config).__name__} as a causal LM ({str(e)[:100]})") from None
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    attention, mlp = _block_linears(model, getattr(text, "num_local_experts", None) or getattr(text, "num_experts", None))
    inv = Inventory(
        architecture=type(model).__name__,
        total_params=sum(p.numel() for p in model.parameters()),
        attention_modules=attention, mlp_modules=mlp,
        tied_embeddings=bool(getattr(text, "tie_word_embeddings", True)),
        sdpa=bool(getattr(model, "_supports_sdpa", False)),
        flex=bool(getattr(model, "_supports_flex_attn", False)),
        versions=f"transformers {transformers.__version__}",
        quantized_params=_bnb_params(model),
        logit_scale=logit_scale(text), logit_softcap=float(getattr(text, "final_logit_softcapping", None) or 0.0),
    )
    moved = bool(mlp) and _adapts_experts(model, list(attention + mlp), rank)
    if moved:  # ftplan's all-linear is then the attention projections (ModelSpec.target_modules)
        inv = dataclasses.replace(inv, mlp_lora_moves_to_experts=True)
    linear = attention if moved else attention + mlp
    for name, targets in (("attention", attention), ("all-linear", linear)):
        inv.lora_params[name] = _lora_count(model, list(targets), rank) if targets else 0
    experts = _expert_parameters(model)
    if experts:
        inv = dataclasses.replace(inv, expert_parameters=experts)
        inv.lora_params["experts"] = _lora_count(model, [], rank, list(experts))
    if not (cfg.get("auto_map") and trust_remote_code):  # remote code is built from its files, not for_model
        from planner import census

        try:
            for kind, layout in census.layer_kinds(cfg).items():
                for method in ("lora", "full"):
                    inv.census[f"{method}@{kind}" if kind else method] = census.per_layer_per_token(layout, method, list(linear))
        except Exception:  # a layout the small width cannot express: no census (derive() decides)
            inv.census.clear()
    return inv


def logit_scale(config) -> float:
    """What the model multiplies its logits by: Cohere's logit_scale, or one over Granite's
    logits_scaling (each model's forward in transformers 5; TRL's chunked loss reads the same
    keys, trl/trainer/sft_trainer.py)."""
    scale = getattr(config, "logit_scale", None)
    if scale is None and getattr(config, "logits_scaling", None):
        scale = 1.0 / config.logits_scaling
    return float(1.0 if scale is None else scale)


def _bnb_params(model) -> int:
    """Weights a 4-bit load quantizes: transformers' bitsandbytes integration replaces modules
    whose type is exactly nn.Linear (or GPT-2's Conv1D), not subclasses, and skips the output
    head (integrations/bitsandbytes.py replace_with_bnb_linear, get_keys_to_not_convert)."""
    import torch
    from transformers.pytorch_utils import Conv1D

    head = model.get_output_embeddings()
    return sum(m.weight.numel() for m in model.modules()
               if (type(m) is torch.nn.Linear or isinstance(m, Conv1D)) and m is not head)


def _block_linears(model, experts: int | None) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Distinct names of the nn.Linear layers inside the decoder blocks: those under an
    attention module, and the rest (a router, whose outputs are the experts, left out)."""
    import torch

    attention, mlp = [], []
    for path, module in model.named_modules():
        if not isinstance(module, torch.nn.Linear) or ".layers." not in f".{path}." and ".h." not in f".{path}.":
            continue
        name = path.rsplit(".", 1)[-1]
        if experts and module.out_features == experts:
            continue
        parts = path.split(".")
        bucket = attention if any("attn" in p or "attention" in p for p in parts[:-1]) else mlp
        if name not in bucket:
            bucket.append(name)
    return tuple(attention), tuple(mlp)


def _expert_parameters(model) -> tuple[str, ...]:
    """Distinct names (module.parameter) of the 3-D weights inside the decoder blocks: a
    transformers-5 mixture of experts' fused experts."""
    names: list[str] = []
    for path, module in model.named_modules():
        if ".layers." not in f".{path}.":
            continue
        for param, weight in module.named_parameters(recurse=False):
            name = f"{path.rsplit('.', 1)[-1]}.{param}"
            if weight.dim() == 3 and name not in names:
                names.append(name)
    return tuple(names)


def _peft(model, targets: list[str], rank: int, parameters: list[str] | None = None):
    import copy
    import warnings

    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=rank, target_modules=targets or None, target_parameters=parameters, init_lora_weights=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return get_peft_model(copy.deepcopy(model), config)


def _lora_count(model, targets: list[str], rank: int, parameters: list[str] | None = None) -> int:
    return sum(p.numel() for p in _peft(model, targets, rank, parameters).parameters() if p.requires_grad)


def _adapts_experts(model, targets: list[str], rank: int) -> bool:
    """Whether PEFT, given these module names, adapts 3-D expert parameters: PEFT 0.21 rewrites
    gate_proj/up_proj/down_proj into target_parameters on the fused experts for the MoE types
    whose checkpoints transformers 5 converts, and drops the dense and shared MLPs of those
    names (peft utils/transformers_weight_conversion.py, _convert_peft_config_moe)."""
    return bool(getattr(_peft(model, targets, rank).base_model, "targeted_parameter_names", None))


def disagreement(spec, inv: Inventory, rank: int = 16) -> str:
    """Why ftplan's shape formulas (a ModelSpec) and the built model disagree, or "" when they
    agree within PARAMS_TOLERANCE (parameters) and LORA_TOLERANCE (LoRA for attention and
    all-linear)."""
    ours = spec.total_params()
    if abs(ours - inv.total_params) > PARAMS_TOLERANCE * inv.total_params:
        return (f"transformers builds {inv.architecture} with {inv.total_params:,} parameters where ftplan's layout "
                f"gives {ours:,}; this architecture has parts ftplan does not model")
    for targets, built in inv.lora_params.items():
        if targets == "experts":  # held by experts_agree: a miss refuses --targets experts, not the model
            continue
        try:
            counted = spec.lora_params(spec.target_modules(targets), rank)
        except ModelError as e:
            return str(e)
        if abs(counted - built) > LORA_TOLERANCE * max(built, 1):
            return (f"PEFT adapts {built:,} LoRA parameters for --targets {targets} at rank {rank}, ftplan counts "
                    f"{counted:,}; its layers are not shaped as ftplan models them")
    return ""


def experts_agree(spec, inv: Inventory, rank: int = 16) -> bool:
    """Whether the built model's fused experts are the ones ftplan counts LoRA on: the same
    names, and PEFT's trainable count for them within LORA_TOLERANCE of ModelSpec.expert_lora_params."""
    from planner.spec import EXPERT_PARAMETERS

    if not spec.is_moe or set(inv.expert_parameters) != set(EXPERT_PARAMETERS) or "experts" not in inv.lora_params:
        return False
    built = inv.lora_params["experts"]
    return abs(spec.expert_lora_params(list(EXPERT_PARAMETERS), rank) - built) <= LORA_TOLERANCE * max(built, 1)
