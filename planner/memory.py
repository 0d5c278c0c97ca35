"""Per-GPU peak memory of one training step, as nvidia-smi shows it (torch reserved plus
the CUDA context), as a sum of named terms.

Each term is one function that returns bytes and says where its formula comes from. The
constants live in knowledge/memory.toml with their sources; the calibration benchmark
(bench/memory.py) measures our own rendered scripts and tests/planner/test_calibration.py
holds these formulas to the committed measurements."""

from __future__ import annotations

from dataclasses import dataclass, field

from planner import knowledge
from planner.hardware import GpuSpec
from planner.models import ModelSpec
from planner.plan import Plan, validate

MAX_SEARCH_BATCH = 4096


def _k(section: str) -> dict:
    return knowledge.table("memory")[section]


@dataclass(frozen=True)
class Term:
    name: str
    bytes: int
    detail: str
    source: str


@dataclass(frozen=True)
class Estimate:
    plan: Plan
    model: ModelSpec
    terms: tuple[Term, ...]
    gpu: GpuSpec | None
    trainable_params: int
    host_ram_bytes: int
    max_micro_batch: int | None
    assumptions: tuple[str, ...] = ()

    @property
    def total_bytes(self) -> int:
        return sum(t.bytes for t in self.terms)

    @property
    def fits(self) -> bool | None:
        return None if self.gpu is None else self.total_bytes <= self.gpu.memory_bytes

    @property
    def headroom_bytes(self) -> int | None:
        return None if self.gpu is None else self.gpu.memory_bytes - self.total_bytes

    def breakdown(self) -> dict[str, int]:
        return {t.name: t.bytes for t in self.terms}

    def as_dict(self) -> dict:
        return {
            "model": self.model.name,
            "plan": self.plan.as_dict(),
            "total_bytes": self.total_bytes,
            "total_gib": round(self.total_bytes / 2**30, 2),
            "breakdown": self.breakdown(),
            "terms": [t.__dict__ for t in self.terms],
            "gpu": self.gpu.as_dict() if self.gpu else None,
            "fits": self.fits,
            "headroom_bytes": self.headroom_bytes,
            "max_micro_batch": self.max_micro_batch,
            "trainable_params": self.trainable_params,
            "total_params": self.model.total_params(),
            "host_ram_bytes": self.host_ram_bytes,
            "predicts": "per-GPU peak as nvidia-smi shows it: torch reserved + CUDA context",
            "assumptions": list(self.assumptions),
        }


# ====================================================================== parameter counts
def adapter_params(model: ModelSpec, plan: Plan) -> int:
    """Trainable parameters of a PEFT method.

    LoRA: r x (in + out) per adapted linear (Hu et al. 2021, eq. 3); DoRA adds a magnitude
    vector of `out` per layer (Liu et al. 2024, eq. 5); prefix tuning learns num_virtual_tokens
    key and value vectors per layer (Li & Liang 2021; PEFT PrefixEncoder without projection);
    IA3 learns one vector per adapted layer: its output width, or its input width for
    feed-forward layers (PEFT IA3Layer)."""
    if plan.method == "full":
        return model.total_params()
    if plan.method == "prefix":
        return plan.virtual_tokens * model.num_layers * 2 * model.kv_width
    modules = model.target_modules(plan.targets) if plan.method != "ia3" else _ia3_modules(model, plan)
    total = 0
    if plan.method == "ia3":
        from planner.models import family_table

        feedforward = set(family_table(model.family).get("ia3_feedforward", ()))
        for m in modules:
            fan_in, fan_out, copies = model.module_shape(m)
            total += (fan_in if m in feedforward else fan_out) * copies
        return total * model.num_layers
    for m in modules:
        fan_in, fan_out, copies = model.module_shape(m)
        per = plan.rank * (fan_in + fan_out) + (fan_out if plan.method == "dora" else 0)
        total += per * copies
    return total * model.num_layers


def _ia3_modules(model: ModelSpec, plan: Plan) -> list[str]:
    from planner.models import family_table

    if plan.targets in ("all-linear", "attention"):
        return list(family_table(model.family)["ia3"])
    return model.target_modules(plan.targets)


def _adapted_widths(model: ModelSpec, plan: Plan) -> tuple[int, int, int]:
    """(sum of input widths, sum of output widths, largest in x out) of the adapted layers in one block."""
    if plan.method not in ("lora", "qlora", "dora"):
        return 0, 0, 0
    ins = outs = largest = 0
    for m in model.target_modules(plan.targets):
        fan_in, fan_out, copies = model.module_shape(m)
        ins += fan_in * copies
        outs += fan_out * copies
        largest = max(largest, fan_in * fan_out)
    return ins, outs, largest


# ====================================================================== static terms
def base_weight_bytes(model: ModelSpec, plan: Plan) -> tuple[int, str]:
    """Weights of the base model on one GPU.

    bf16: 2 bytes/param; mixed precision and fp32 keep fp32 weights (4 bytes, the master
    copy; Micikevicius et al. 2018). QLoRA stores the blocks' linear weights in NF4 with
    double-quantized constants (Dettmers et al. 2023, section 2) and keeps embeddings,
    lm_head and norms in bf16 (transformers' bnb integration skips lm_head). ZeRO-3 / FSDP
    full shard divide by the world size (Rajbhandari et al. 2020); parameter offload keeps
    only the gathered working set (two blocks)."""
    dt = _k("dtype_bytes")
    total = model.total_params()
    if plan.method == "qlora":
        nf4 = _k("nf4")
        per_param = nf4["bytes_per_param"] + nf4["absmax_bytes_double_quant"] / nf4["block_size"] + \
            nf4["nested_scale_bytes"] / (nf4["block_size"] * nf4["nested_block_blocks"])
        linear = model.linear_params()
        b = int(linear * per_param + (total - linear) * dt["bf16"])
        detail = f"{linear:,} linear params x {per_param:.4f} B (NF4 + constants) + {total - linear:,} x 2 B (bf16)"
    else:
        width = dt["bf16"] if plan.precision == "bf16" else dt["fp32"]
        b = total * width
        detail = f"{total:,} params x {width} B ({plan.precision})"
    if _shards_params(plan):
        if plan.offload == "all":
            block = model.layer_params() * dt["bf16"]
            return 2 * block, f"parameters offloaded to CPU; two gathered blocks of {model.layer_params():,} params x 2 B"
        b //= plan.world_size
        detail += f" / {plan.world_size} GPUs (sharded)"
    return b, detail


def adapter_weight_bytes(model: ModelSpec, plan: Plan) -> tuple[int, str]:
    """Trainable adapter weights: PEFT creates them in fp32 even on a bf16 base
    (get_peft_model(autocast_adapter_dtype=True), the default: ../shared/notes/facts.md)."""
    if plan.method == "full":
        return 0, "full fine-tuning trains the base weights themselves"
    n = adapter_params(model, plan)
    return n * _k("dtype_bytes")["fp32"], f"{n:,} adapter params x 4 B (fp32)"


def _trainable_dtype_bytes(plan: Plan) -> int:
    dt = _k("dtype_bytes")
    if plan.method == "full" and plan.precision == "bf16":
        return dt["bf16"]
    return dt["fp32"]


def gradient_bytes(model: ModelSpec, plan: Plan) -> tuple[int, str]:
    """One gradient per trainable parameter in the parameter's dtype (torch autograd).
    ZeRO-2/3 and FSDP keep only this GPU's shard after the reduce-scatter."""
    n = adapter_params(model, plan)
    width = _trainable_dtype_bytes(plan)
    b = n * width
    detail = f"{n:,} trainable x {width} B"
    if plan.zero >= 2 or plan.engine == "fsdp":
        b //= plan.world_size
        detail += f" / {plan.world_size} GPUs"
    return b, detail


def optimizer_state_bytes(model: ModelSpec, plan: Plan) -> tuple[int, str]:
    """AdamW keeps exp_avg and exp_avg_sq (Loshchilov & Hutter 2019).

    torch.optim.AdamW stores them in the parameter's dtype (bf16 params: 2 x 2 B; fp32:
    2 x 4 B). bitsandbytes' 8-bit AdamW stores 1 B per state plus an fp32 absmax per
    256-value block, and keeps tensors under 4,096 values in 32 bits (Dettmers et al. 2022,
    8-bit Optimizers; bitsandbytes Optimizer8bit). Under DeepSpeed ZeRO the optimizer also
    holds an fp32 master copy (4 + 8 B per param, ZeRO paper section 3). ZeRO-1+ shards it;
    optimizer offload moves it to host RAM."""
    n = adapter_params(model, plan)
    opt = _k("optimizer")
    if plan.offload in ("optimizer", "all"):
        return 0, "offloaded to CPU (see host RAM)"
    if _deepspeed(plan):
        per = 12.0
        detail = f"{n:,} trainable x 12 B (fp32 master + 2 fp32 states, DeepSpeed)"
    elif plan.optim in ("adamw_8bit", "paged_adamw_8bit"):
        per = opt["adamw_states"] * (opt["adamw_8bit_state_bytes"] + 4 / opt["adamw_8bit_block"])
        detail = f"{n:,} trainable x {per:.3f} B (two 8-bit states + block absmax)"
        if plan.optim.startswith("paged"):
            detail += "; paged states stay resident while the GPU has room"
    else:
        width = _trainable_dtype_bytes(plan)
        per = opt["adamw_states"] * width
        detail = f"{n:,} trainable x {opt['adamw_states']} states x {width} B"
    b = int(n * per)
    if plan.zero >= 1 or plan.engine == "fsdp":
        b //= plan.world_size
        detail += f" / {plan.world_size} GPUs"
    return b, detail


def autocast_weight_copy_bytes(model: ModelSpec, plan: Plan) -> tuple[int, str]:
    """Mixed precision: autocast casts each fp32 weight to bf16 for its matmul and the
    graph keeps that copy until backward (torch.autocast weight cache): 2 B per param."""
    if not (plan.method == "full" and plan.precision == "mixed"):
        return 0, "no fp32 weights to cast"
    n = model.total_params() // (plan.world_size if _shards_params(plan) else 1)
    return n * 2, f"{n:,} params x 2 B bf16 copies"


def reference_model_bytes(model: ModelSpec, plan: Plan) -> tuple[int, str]:
    """DPO's frozen reference policy. PEFT methods get it for free by disabling the
    adapters (PeftModel.disable_adapter); full fine-tuning loads a second bf16 copy
    (Rafailov et al. 2023; TRL DPOTrainer's ref_model)."""
    if plan.task != "dpo" or plan.method != "full":
        return 0, "none" if plan.task != "dpo" else "adapters disabled for the reference pass"
    n = model.total_params() // (plan.world_size if _shards_params(plan) else 1)
    return n * 2, f"{n:,} params x 2 B (bf16 reference copy)"


# ====================================================================== per-step terms
def tokens_per_step(plan: Plan) -> int:
    """Sequences in one forward on one GPU: DPO runs chosen and rejected together."""
    rows = plan.batch * (2 if plan.task == "dpo" else 1)
    return rows * (plan.seq_len + (plan.virtual_tokens if plan.method == "prefix" else 0))


def layer_activation_bytes_per_token(model: ModelSpec, plan: Plan) -> int:
    """Bytes one decoder layer saves for backward per token, without checkpointing.

    Korthikanti et al. 2022 (table 2) count 34·h bytes per token for a GPT block with flash
    attention; we count the HF Llama-style block term by term (knowledge/memory.toml
    [activations]): both norms (fp32 upcast), the inputs of trainable or adapted linear
    layers, sdpa's q/k/v/out, the MLP's intermediate tensors, and LoRA's input copies,
    dropout masks and DoRA's extra outputs."""
    a = _k("activations")
    h, q, kv = model.hidden_size, model.q_width, model.kv_width
    inter = model.moe_intermediate_size * model.experts_per_token if model.is_moe else model.intermediate_size
    adapted = set(model.target_modules(plan.targets)) if plan.method in ("lora", "qlora", "dora") else set()
    trainable_base = plan.method == "full"

    def keeps_input(module: str) -> bool:
        return trainable_base or module in adapted or plan.method == "ia3"

    fam_attn = ["q_proj", "k_proj", "v_proj", "o_proj"] if model.family not in ("phi3", "gpt_neox", "falcon") \
        else (["qkv_proj", "o_proj"] if model.family == "phi3" else ["query_key_value", "dense"])
    b = model.norms_per_layer * a["norm_per_hidden"] * h
    # q/k/v share one input tensor; it is kept if any of them needs it
    if any(keeps_input(m) for m in fam_attn[:-1]):
        b += a["linear_input_per_width"] * h
    b += a["attention_qkv_out"] * (2 * q + 2 * kv)
    if keeps_input(fam_attn[-1]):
        b += a["linear_input_per_width"] * q
    mlp_in = {"gated": ("gate_proj", "down_proj"), "plain": ("dense_h_to_4h", "dense_4h_to_h")}[model.mlp]
    if trainable_base or adapted or plan.method == "ia3":
        b += a["linear_input_per_width"] * h  # MLP input
    b += (a["gated_mlp_per_intermediate"] if model.mlp == "gated" else a["plain_mlp_per_intermediate"]) * inter
    if keeps_input(mlp_in[1]) or any(m in adapted for m in ("down_proj", "dense_4h_to_h", "w2")):
        b += a["linear_input_per_width"] * inter
    ins, outs, _ = _adapted_widths(model, plan)
    if adapted:
        b += a["lora_input_copy_per_width"] * ins
        if plan.dropout > 0:
            b += a["lora_dropout_mask_per_width"] * ins
        if plan.method == "dora":
            b += a["dora_per_out_width"] * outs
    return int(b)


def activation_bytes(model: ModelSpec, plan: Plan) -> tuple[int, str]:
    """Activations kept for backward. Without checkpointing: every layer's saved tensors.
    With it (transformers' gradient_checkpointing_enable, one checkpoint per decoder layer;
    Chen et al. 2016): each layer's bf16 input, plus one layer recomputed in full during
    its backward."""
    tokens = tokens_per_step(plan)
    per_layer = layer_activation_bytes_per_token(model, plan) * tokens
    if plan.grad_ckpt:
        kept = int(_k("activations")["checkpoint_per_hidden"] * model.hidden_size * tokens * model.num_layers)
        return kept + per_layer, (f"{model.num_layers} layer inputs x {tokens:,} tokens x {model.hidden_size} x 2 B"
                                  f" + one layer recomputed ({per_layer / 2**20:,.0f} MiB)")
    return per_layer * model.num_layers, f"{model.num_layers} layers x {tokens:,} tokens x {per_layer // tokens:,} B"


def logits_loss_bytes(model: ModelSpec, plan: Plan) -> tuple[int, str]:
    """The lm_head output and the cross-entropy around it.

    Standard: bf16 logits, their fp32 upcast in transformers' ForCausalLMLoss, log_softmax's
    saved fp32 output and its gradient: about 12 B per logit at the peak
    (../shared/notes/facts.md: 10-12 B x batch x seq x vocab). Chunked (our script's
    chunked loss) and fused (Liger fused linear cross-entropy) materialise only one chunk
    of `chunk_tokens` rows at a time. DPO computes per-token log-probs for chosen and
    rejected rows the same way."""
    loss = _k("loss")
    tokens = tokens_per_step(plan)
    per_logit = loss["dpo_logps_per_logit"] if plan.task == "dpo" else loss["standard_per_logit"]
    if plan.loss == "standard":
        rows = tokens
        detail = f"{tokens:,} tokens x {model.vocab_size:,} vocab x {per_logit:g} B"
    else:
        rows = min(tokens, loss["chunk_tokens"])
        detail = f"{plan.loss}: {rows:,}-token chunk x {model.vocab_size:,} vocab x {per_logit:g} B"
    return int(rows * model.vocab_size * per_logit), detail


def transient_weight_bytes(model: ModelSpec, plan: Plan) -> tuple[int, str]:
    """Full-size weights built during the step: QLoRA dequantizes each 4-bit layer to bf16
    for its matmul (bitsandbytes MatMul4Bit); DoRA materialises lora_B @ lora_A and the
    combined weight in fp32 to take its column norm (PEFT tuners/lora/dora.py). Only the
    largest layer's copies coexist."""
    _, _, largest = _adapted_widths(model, plan)
    if not largest and plan.method == "qlora":
        largest = max(model.hidden_size * model.intermediate_size, model.hidden_size * model.q_width)
    b = 0
    parts = []
    if plan.method == "qlora":
        full = max(model.hidden_size * model.intermediate_size, model.hidden_size * (model.q_width + 2 * model.kv_width))
        b += full * 2
        parts.append(f"dequantized layer {full:,} x 2 B")
    if plan.method == "dora":
        b += largest * 4 * 2
        parts.append(f"DoRA weight norm {largest:,} x 4 B x 2")
    return b, "; ".join(parts) or "none"


def engine_buffer_bytes(model: ModelSpec, plan: Plan) -> tuple[int, str]:
    """DeepSpeed's communication buckets: reduce_bucket_size and allgather_bucket_size of
    5e8 elements by default, bf16 (DeepSpeed runtime/zero/config.py); our rendered configs
    set 2e8 each. FSDP prefetches one wrapped block ahead (torch FSDP docs)."""
    if _deepspeed(plan):
        elems = 2e8 * (2 if plan.zero >= 2 else 1)
        return int(min(elems, adapter_params(model, plan)) * 2), "DeepSpeed buckets, 2e8 elements x 2 B each"
    if plan.engine == "fsdp":
        return model.layer_params() * 2, "one prefetched block x 2 B"
    return 0, "none"


def cuda_context_bytes(model: ModelSpec, plan: Plan) -> tuple[int, str]:
    """CUDA context and kernel images: NVML-visible memory that torch never reserves
    (measured: NVML used minus torch reserved on the H100, ../shared/notes/facts.md)."""
    return int(_k("overhead")["cuda_context_bytes"]), "measured on the H100 (torch 2.11, CUDA 13)"


TERMS = (
    ("weights", base_weight_bytes),
    ("adapter_weights", adapter_weight_bytes),
    ("gradients", gradient_bytes),
    ("optimizer_states", optimizer_state_bytes),
    ("autocast_weight_copies", autocast_weight_copy_bytes),
    ("reference_model", reference_model_bytes),
    ("activations", activation_bytes),
    ("logits_and_loss", logits_loss_bytes),
    ("transient_weights", transient_weight_bytes),
    ("engine_buffers", engine_buffer_bytes),
)


def _deepspeed(plan: Plan) -> bool:
    return plan.engine == "deepspeed" or (plan.zero >= 1 and plan.engine != "fsdp")


def _shards_params(plan: Plan) -> bool:
    return plan.zero == 3 or plan.engine == "fsdp"


def host_ram_bytes(model: ModelSpec, plan: Plan) -> int:
    """Host RAM that offload needs: DeepSpeed's CPU Adam keeps fp32 master weights and two
    fp32 states (12 B per param) for this GPU's shard, plus a pinned fp32 gradient buffer
    (4 B); parameter offload adds the bf16 parameters (ZeRO-Infinity paper, table 1)."""
    if plan.offload == "none":
        return 0
    n = adapter_params(model, plan)
    b = n * (12 + 4) // plan.world_size
    if plan.offload == "all":
        b += model.total_params() * 2 // plan.world_size
    return b


# ====================================================================== the estimate
def _terms(model: ModelSpec, plan: Plan) -> list[Term]:
    out = []
    for name, fn in TERMS:
        b, detail = fn(model, plan)
        if b:
            out.append(Term(name, int(b), detail, _first_line(fn.__doc__)))
    subtotal = sum(t.bytes for t in out)
    frag = _k("overhead")["fragmentation"]
    out.append(Term("allocator_overhead", int(subtotal * frag), f"{frag:.0%} of allocated (reserved over allocated)",
                    "../shared/notes/facts.md: reserved exceeds allocated by 2-20%; expandable_segments narrows it"))
    b, detail = cuda_context_bytes(model, plan)
    out.append(Term("cuda_context", b, detail, _first_line(cuda_context_bytes.__doc__)))
    return out


def _first_line(doc: str | None) -> str:
    return " ".join((doc or "").strip().split("\n\n")[0].split())


def total_bytes(model: ModelSpec, plan: Plan) -> int:
    return sum(t.bytes for t in _terms(model, plan))


def max_micro_batch(model: ModelSpec, plan: Plan, capacity: int) -> int:
    """The largest micro-batch whose estimate fits `capacity` (0 if even 1 does not)."""
    if total_bytes(model, plan.with_(batch=1)) > capacity:
        return 0
    lo, hi = 1, MAX_SEARCH_BATCH
    if total_bytes(model, plan.with_(batch=hi)) <= capacity:
        return hi
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if total_bytes(model, plan.with_(batch=mid)) <= capacity:
            lo = mid
        else:
            hi = mid
    return lo


def estimate(model: ModelSpec, plan: Plan, gpu: GpuSpec | None = None) -> Estimate:
    validate(plan, model)
    terms = tuple(_terms(model, plan))
    assumptions = [
        f"attention: {plan.attn} (no stored score matrix)",
        "adapters in fp32 (PEFT default), compute under bf16 autocast" if plan.is_peft else
        f"full fine-tuning, {plan.precision} weights",
        "peak of a steady-state step (optimizer states allocated)",
    ]
    if plan.task == "dpo":
        assumptions.append("DPO: chosen and rejected in one forward (2 x batch); reference pass under no_grad")
    if model.is_moe:
        assumptions.append("MoE: activations for the experts each token uses; all-linear adapts attention only")
    return Estimate(
        plan=plan, model=model, terms=terms, gpu=gpu, trainable_params=adapter_params(model, plan),
        host_ram_bytes=host_ram_bytes(model, plan),
        max_micro_batch=max_micro_batch(model, plan, gpu.memory_bytes) if gpu else None,
        assumptions=tuple(assumptions),
    )
