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

from planner import census, models  # noqa: E402
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
    from planner import script

    # the GPU's kernel where there is one; the CPU has no FlexAttention backward
    config._attn_implementation = script.attention(spec, plan) if torch.cuda.is_available() else script.cpu_attention(spec, plan)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16 if plan.precision == "bf16" else torch.float32)
    model.config.use_cache = False
    if plan.method == "qlora":
        model = _quantized(model, plan)
    if plan.method in ("lora", "dora", "qlora"):
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


def _quantized(model, plan: Plan):
    """The same weights loaded in NF4 as the scripts load them (bitsandbytes runs 4-bit layers
    on the CPU too), with PEFT's prepare_model_for_kbit_training where the plan asks for it."""
    import tempfile

    import torch
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    with tempfile.TemporaryDirectory() as d:
        model.save_pretrained(d)
        quant = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                   bnb_4bit_compute_dtype=torch.bfloat16)
        model = AutoModelForCausalLM.from_pretrained(d, quantization_config=quant, dtype=torch.bfloat16,
                                                     device_map=str(torch.get_default_device()),
                                                     attn_implementation=model.config._attn_implementation)
    model.config.use_cache = False
    if plan.kbit_prep:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    return model


def saved_bytes(spec: models.ModelSpec, plan: Plan, shape: tuple[int, int], device: str = "cpu") -> int:
    """Bytes of distinct storages saved for backward by the decoder (no lm_head, no loss)."""
    import torch

    with torch.device(device):
        model = _model(spec, plan)
    ids = torch.randint(0, spec.vocab_size, shape, device=device)
    return census.saved_bytes(model, ids, device, autocast=plan.precision != "fp32")


def saved_by_kind(spec: models.ModelSpec, plan: Plan, shape: tuple[int, int], device: str = "cpu") -> dict[str, int]:
    """saved_bytes split by dtype and last dimension ("torch.float32 x4544"): which tensors
    a difference from the formula is made of."""
    import collections

    import torch

    with torch.device(device):
        model = _model(spec, plan)
    ids = torch.randint(0, spec.vocab_size, shape, device=device)
    kinds = collections.Counter()
    for nbytes, kind in census.saved_storages(model, ids, device, autocast=plan.precision != "fp32").values():
        kinds[kind] += nbytes
    return dict(kinds)


def per_layer_per_token(spec: models.ModelSpec, plan: Plan) -> float:
    """Differences over layers and over tokens cancel what is saved once per layer (weight
    casts) or once per model (embeddings, masks)."""
    (a, b), (c, d) = TOKENS
    one_layer = [saved_bytes(small_spec(spec, 3), plan, t) - saved_bytes(small_spec(spec, 2), plan, t) for t in TOKENS]
    return (one_layer[1] - one_layer[0]) / (c * d - a * b)


# Ops that launch no kernel: views and metadata.
_NO_KERNEL = {"detach", "alias", "empty", "empty_strided", "t", "view", "_unsafe_view", "expand", "as_strided",
              "transpose", "permute", "unsqueeze", "squeeze", "slice", "select", "split", "chunk", "unbind",
              "lift_fresh", "split_with_sizes", "unsafe_split"}


def dispatched_ops(spec: models.ModelSpec, plan: Plan, layers: int) -> tuple[int, int]:
    """(forward, backward) aten ops of the decoder that launch work, counted below autograd
    and autocast (a TorchDispatchMode sees each one): in eager PyTorch every one of them is a
    Python-to-kernel dispatch the host pays for, whatever the tensor sizes."""
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode

    class Count(TorchDispatchMode):
        n = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            if not func.is_view and func.__name__.split(".")[0] not in _NO_KERNEL:
                self.n += 1
            return func(*args, **(kwargs or {}))

    decoder = census.decoder(_model(small_spec(spec, layers), plan))
    ids = torch.randint(0, 512, (1, 64))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        with Count() as forward:
            out = decoder(input_ids=ids).last_hidden_state
        with Count() as backward:
            out.float().sum().backward()
    return forward.n, backward.n


def ops_per_layer(name: str) -> dict:
    """knowledge/speed.toml's [ops.<family>] row for one catalog model: ops per decoder layer,
    the difference between a 3- and a 2-layer model, for the frozen and the trained base, and
    per adapted module for LoRA, DoRA and IA3 (all-linear against attention-only targets)."""
    spec = models.resolve(name)

    def layer(method, targets="all-linear"):
        plan = Plan(model=name, method=method, targets=targets, seq_len=64)
        (f3, b3), (f2, b2) = dispatched_ops(spec, plan, 3), dispatched_ops(spec, plan, 2)
        return f3 - f2, b3 - b2

    full_f, full_b = layer("full")
    lora_f, lora_b = layer("lora")
    attn_f, attn_b = layer("lora", "attention")
    extra = len(spec.target_modules("all-linear")) - len(spec.target_modules("attention"))
    per_f, per_b = (lora_f - attn_f) / extra, (lora_b - attn_b) / extra
    n = len(spec.target_modules("all-linear"))
    dora_f, dora_b = layer("dora")
    ia3_f, ia3_b = layer("ia3")
    from planner import script

    n_ia3 = len(script.ia3_modules(spec, Plan(model=name, method="ia3")))
    frozen_b = lora_b - n * per_b
    return {"forward": full_f, "backward_trained": full_b, "backward_frozen": round(frozen_b),
            "lora_forward": round(per_f, 2), "lora_backward": round(per_b, 2),
            "dora_forward": round((dora_f - full_f) / n, 2), "dora_backward": round((dora_b - frozen_b) / n, 2),
            "ia3_forward": round((ia3_f - full_f) / n_ia3, 2), "ia3_backward": round((ia3_b - frozen_b) / n_ia3, 2)}


def on_the_gpu(spec: models.ModelSpec, plan: Plan, batch: int = 1) -> dict:
    """The same count on the GPU at the catalog's own widths and plan.seq_len, with the
    attention kernels sdpa ran (torch.profiler): kernels that the CPU and small head sizes
    never pick show up here (python3 bench/census.py --cuda Pythia-1B lora 2048)."""
    import dataclasses

    import torch

    shapes = ((batch, plan.seq_len), (2 * batch, plan.seq_len))
    full = [dataclasses.replace(spec, num_layers=n) for n in (2, 3)]
    one_layer = [saved_bytes(full[1], plan, t, "cuda") - saved_bytes(full[0], plan, t, "cuda") for t in shapes]
    with torch.device("cuda"):
        model = _model(full[0], plan)
    ids = torch.randint(0, spec.vocab_size, shapes[0], device="cuda")
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof, \
            torch.autocast("cuda", dtype=torch.bfloat16):
        model(input_ids=ids, labels=ids).loss.backward()
        torch.cuda.synchronize()
    kernels = sorted({e.name[:90] for e in prof.events() if any(k in e.name.lower() for k in ("flash", "fmha", "attention", "softmax", "bmm"))})
    kinds = [saved_by_kind(full[n], plan, shapes[0], "cuda") for n in (1, 0)]
    by_kind = {k: (kinds[0].get(k, 0) - kinds[1].get(k, 0)) / (batch * plan.seq_len) for k in kinds[0].keys() | kinds[1].keys()}
    return {"model": spec.name, "method": plan.method, "seq_len": plan.seq_len, "batch": batch,
            "per_token_per_layer": (one_layer[1] - one_layer[0]) / (shapes[1][0] - shapes[0][0]) / plan.seq_len,
            "per_layer_per_token_by_kind": {k: v for k, v in sorted(by_kind.items()) if v},
            "per_layer_at_batch": one_layer[0], "attention_kernels": kernels}


if __name__ == "__main__":
    from planner import memory

    if sys.argv[1] == "--ops":  # python3 bench/census.py --ops Llama-3.2-1B Qwen3-0.6B ...
        for name in sys.argv[2:]:
            row = ops_per_layer(name)
            print(f"[ops.{models.resolve(name).family}]  # {name}\n" + "\n".join(f"{k} = {v}" for k, v in row.items()), flush=True)
        sys.exit(0)
    if sys.argv[1] == "--cuda":
        import json

        for name, method, seq in zip(sys.argv[2::3], sys.argv[3::3], sys.argv[4::3]):
            spec = models.resolve(name)
            plan = Plan(model=name, method=method, seq_len=int(seq), compile=False)  # the census runs eager
            r = on_the_gpu(spec, plan)
            # the census's third layer: a MoE one where the first are dense
            r["formula_per_token_per_layer"] = memory.layer_activation_bytes_per_token(spec.layer_groups()[-1][1], plan)
            print(json.dumps(r), flush=True)
        sys.exit(0)

    name, method = sys.argv[1], sys.argv[2]
    spec = models.resolve(name)
    plan = Plan(model=name, method=method, seq_len=TOKENS[0][1], precision=sys.argv[3] if len(sys.argv) > 3 else "bf16")
    small = small_spec(spec, 3)
    print(f"measured {per_layer_per_token(spec, plan):,.0f} B, formula {memory.layer_activation_bytes_per_token(small, plan):,} B"
          " per token per layer")
