"""Count what one decoder layer saves for backward, per token, by running a small model of
a catalog architecture on the CPU and recording every tensor autograd keeps
(torch.autograd.graph.saved_tensors_hooks), counted once per storage. The difference
between a 3-layer and a 2-layer model is one layer.

This measures the activation term of planner/memory.py directly, one term at a time,
without a GPU: tests/planner/test_activation_census.py holds the formula to it.

    python3 bench/census.py Llama-3.1-8B lora"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from planner import models  # noqa: E402
from planner.plan import Plan  # noqa: E402

TOKENS = ((1, 256), (2, 256))


def small_spec(spec: models.ModelSpec, layers: int) -> models.ModelSpec:
    """The same architecture at a width the CPU runs in milliseconds: head counts and the
    ratios between widths are kept (GQA groups, MLP expansion), the widths shrink."""
    head_dim = 32
    heads = 8
    kv = max(1, heads * spec.num_kv_heads // spec.num_heads)
    hidden = 256
    inter = hidden * spec.intermediate_size // spec.hidden_size // 8 * 8
    return dataclasses.replace(spec, hidden_size=hidden, head_dim=head_dim, num_heads=heads, num_kv_heads=kv,
                               intermediate_size=inter, num_layers=layers, vocab_size=512,
                               moe_intermediate_size=min(spec.moe_intermediate_size, 64), num_experts=0, experts_per_token=0)


def _model(spec: models.ModelSpec, plan: Plan):
    import torch
    from transformers import AutoModelForCausalLM

    from bench.archs import hf_config

    config = hf_config(spec)
    from planner.memory import effective_attention

    config._attn_implementation = effective_attention(spec, plan)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16 if plan.precision == "bf16" else torch.float32)
    model.config.use_cache = False
    if plan.method in ("lora", "dora"):
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(model, LoraConfig(r=plan.rank, lora_alpha=plan.alpha, lora_dropout=plan.dropout,
                                                 target_modules=spec.target_modules(plan.targets),
                                                 use_dora=plan.method == "dora", task_type="CAUSAL_LM"))
        if not plan.cast_adapter_inputs:  # as the rendered scripts do
            for module in model.modules():
                if hasattr(module, "cast_input_dtype_enabled"):
                    module.cast_input_dtype_enabled = False
    elif plan.method == "ia3":
        from peft import IA3Config, get_peft_model

        from planner.models import family_table

        table = family_table(spec.family)
        model = get_peft_model(model, IA3Config(target_modules=list(table["ia3"]),
                                                feedforward_modules=list(table.get("ia3_feedforward", ())),
                                                task_type="CAUSAL_LM"))
    model.train()
    return model


def saved_bytes(spec: models.ModelSpec, plan: Plan, shape: tuple[int, int]) -> int:
    """Bytes of distinct storages saved for backward by the decoder (no lm_head, no loss)."""
    import torch

    model = _model(spec, plan)
    params = {p.data_ptr() for p in model.parameters()}
    seen: dict[int, int] = {}

    def pack(t):
        if t.numel() and t.data_ptr() not in params:
            storage = t.untyped_storage()
            seen[storage.data_ptr()] = max(seen.get(storage.data_ptr(), 0), storage.nbytes())
        return t

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    decoder = getattr(base, base.base_model_prefix)
    ids = torch.randint(0, spec.vocab_size, shape)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), \
            torch.autocast("cpu", dtype=torch.bfloat16, enabled=plan.precision != "fp32"):
        decoder(input_ids=ids)
    return sum(seen.values())


def per_layer_per_token(spec: models.ModelSpec, plan: Plan) -> float:
    """Differences over layers and over tokens cancel what is saved once per layer (weight
    casts) or once per model (embeddings, masks)."""
    (a, b), (c, d) = TOKENS
    one_layer = [saved_bytes(small_spec(spec, 3), plan, t) - saved_bytes(small_spec(spec, 2), plan, t) for t in TOKENS]
    return (one_layer[1] - one_layer[0]) / (c * d - a * b)


if __name__ == "__main__":
    from planner import memory

    name, method = sys.argv[1], sys.argv[2]
    spec = models.resolve(name)
    plan = Plan(model=name, method=method, seq_len=TOKENS[0][1], precision=sys.argv[3] if len(sys.argv) > 3 else "bf16")
    small = small_spec(spec, 3)
    print(f"measured {per_layer_per_token(spec, plan):,.0f} B, formula {memory.layer_activation_bytes_per_token(small, plan):,} B"
          " per token per layer")
