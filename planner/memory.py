"""Per-GPU peak memory of one training step, as nvidia-smi shows it (torch reserved plus
the CUDA context), as a sum of named terms.

Each term is one function that returns bytes and says where its formula comes from. The
constants live in knowledge/memory.toml with their sources; the calibration benchmark
(bench/memory.py) measures our own rendered scripts and tests/planner/test_calibration.py
holds these formulas to the committed measurements."""

from __future__ import annotations

from dataclasses import dataclass

from planner import evidence, knowledge, script
from planner.hardware import GpuSpec
from planner.plan import Plan, validate
from planner.spec import ModelSpec


def _k(section: str) -> dict:
    return knowledge.table("memory")[section]


@dataclass(frozen=True)
class Term:
    name: str
    bytes: int
    detail: str
    source: str
    at_peak: bool = True  # False: this memory exists in another phase of the step, not at its peak


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
    peak_phase: str = ""

    @property
    def total_bytes(self) -> int:
        return sum(t.bytes for t in self.terms if t.at_peak)



    @property
    def evidence(self) -> evidence.Evidence:
        return evidence.of(self.model, self.plan)

    @property
    def fits(self) -> bool | None:
        return None if self.gpu is None else self.total_bytes <= self.gpu.memory_bytes

    @property
    def headroom_bytes(self) -> int | None:
        return None if self.gpu is None else self.gpu.memory_bytes - self.total_bytes

    def term_bytes(self) -> dict[str, int]:
        """Every term's size, including those alive only outside the peak phase."""
        return {t.name: t.bytes for t in self.terms}

    def breakdown(self) -> dict[str, int]:
        return {t.name: t.bytes for t in self.terms if t.at_peak}

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
            "evidence": self.evidence.as_dict(),
            "predicts": "per-GPU peak as nvidia-smi shows it: torch reserved + CUDA context",
            "assumptions": list(self.assumptions),
            "peak_phase": self.peak_phase,
        }


# ====================================================================== static terms
def base_weight_bytes(model: ModelSpec, plan: Plan) -> tuple[int, str]:
    """Weights of the base model on one GPU.

    bf16: 2 bytes/param; mixed precision and fp32 keep fp32 weights (4 bytes, the master
    copy; Micikevicius et al. 2018). QLoRA stores the blocks' linear weights in NF4 with
    double-quantized constants (Dettmers et al. 2023, section 2) and keeps embeddings,
    lm_head and norms in bf16 (transformers' bnb integration skips lm_head). ZeRO-3 / FSDP
    full shard divide by the world size (Rajbhandari et al. 2020); parameter offload keeps
    only the gathered working set (two blocks). transformers 5 fuses MoE experts into 3-D
    parameters that its bnb integration does not quantize: they stay bf16 under QLoRA
    (measured on the H200: docs/guides.md#mixture-of-experts). PEFT's
    prepare_model_for_kbit_training casts the unquantized rest to fp32 (peft utils/other.py)."""
    dt = _k("dtype_bytes")
    total = model.total_params()
    if plan.method == "qlora":
        nf4 = _k("nf4")
        per_param = nf4["bytes_per_param"] + nf4["absmax_bytes_double_quant"] / nf4["block_size"] + \
            nf4["nested_scale_bytes"] / (nf4["block_size"] * nf4["nested_block_blocks"])
        linear = model.quantized_params()
        # prepare_model_for_kbit_training casts every parameter bitsandbytes did not quantize to fp32
        rest, rest_dtype = (dt["fp32"], "fp32, --kbit-prep") if plan.kbit_prep else (dt["bf16"], "bf16")
        b = int(linear * per_param + (total - linear) * rest)
        detail = f"{linear:,} linear params x {per_param:.4f} B (NF4 + constants) + {total - linear:,} x {rest} B ({rest_dtype})"
        if model.is_moe:
            detail += f", the fused experts' {model.expert_params():,} among them (bitsandbytes leaves them 16-bit)"
    else:
        width = dt["fp32"] if plan.stores_fp32_weights else dt["bf16"]
        b = total * width
        detail = f"{total:,} params x {width} B ({plan.precision})"
    if plan.shards_params:
        if plan.offload == "all":
            block = model.layer_params() * dt["bf16"]
            return 2 * block, f"parameters offloaded to CPU; two gathered blocks of {model.layer_params():,} params x 2 B"
        b //= plan.shard_count
        detail += f" / {plan.shard_count} GPUs (sharded)"
    return b, detail


def adapter_weight_bytes(model: ModelSpec, plan: Plan) -> tuple[int, str]:
    """Trainable adapter weights: PEFT creates them in fp32 even on a bf16 base
    (get_peft_model(autocast_adapter_dtype=True), the default: docs/guides.md (measurements made before the catalog))."""
    if plan.method == "full":
        return 0, "full fine-tuning trains the base weights themselves"
    n = script.trainable_params(model, plan)
    return n * _k("dtype_bytes")["fp32"], f"{n:,} adapter params x 4 B (fp32)"


def gradient_bytes(model: ModelSpec, plan: Plan) -> tuple[int, str]:
    """One gradient per trainable parameter in the parameter's dtype (torch autograd).
    ZeRO-2/3 and FSDP keep only this GPU's shard after the reduce-scatter."""
    n = script.trainable_params(model, plan)
    width = script.trainable_dtype_bytes(plan)
    b = n * width
    detail = f"{n:,} trainable x {width} B"
    if plan.shards_gradients:
        b //= plan.shard_count
        detail += f" / {plan.shard_count} GPUs"
    return b, detail


def optimizer_state_bytes(model: ModelSpec, plan: Plan) -> tuple[int, str]:
    """AdamW keeps exp_avg and exp_avg_sq (Loshchilov & Hutter 2019).

    torch.optim.AdamW stores them in the parameter's dtype (bf16 params: 2 x 2 B; fp32:
    2 x 4 B). bitsandbytes' 8-bit AdamW stores 1 B per state plus an fp32 absmax per
    256-value block, and keeps tensors under 4,096 values in 32 bits (Dettmers et al. 2022,
    8-bit Optimizers; bitsandbytes Optimizer8bit). Under DeepSpeed ZeRO the optimizer also
    holds an fp32 master copy (4 + 8 B per param, ZeRO paper section 3). ZeRO-1+ shards it;
    optimizer offload moves it to host RAM."""
    n = script.trainable_params(model, plan)
    opt = _k("optimizer")
    if plan.offload in ("optimizer", "all"):
        return 0, "offloaded to CPU (see host RAM)"
    per = optimizer_bytes_per_param(plan)
    if plan.uses_deepspeed:
        detail = f"{n:,} trainable x {per:g} B (fp32 master + 2 fp32 states, DeepSpeed)"
    elif plan.optim in ("adamw_8bit", "paged_adamw_8bit"):
        detail = f"{n:,} trainable x {per:.3f} B (two 8-bit states + block absmax)"
        if plan.optim.startswith("paged"):
            detail += "; paged states stay resident while the GPU has room"
    else:
        detail = f"{n:,} trainable x {opt['adamw_states']} states x {script.trainable_dtype_bytes(plan)} B"
    b = int(n * per)
    if plan.shards_optimizer:
        b //= plan.shard_count
        detail += f" / {plan.shard_count} GPUs"
    return b, detail


def optimizer_bytes_per_param(plan: Plan) -> float:
    """Optimizer state per trained parameter, unsharded (optimizer_state_bytes cites the sources)."""
    opt = _k("optimizer")
    if plan.uses_deepspeed:
        return opt["deepspeed_bytes_per_param"]
    if plan.optim in ("adamw_8bit", "paged_adamw_8bit"):
        return opt["adamw_states"] * (opt["adamw_8bit_state_bytes"] + 4 / opt["adamw_8bit_block"])
    return opt["adamw_states"] * script.trainable_dtype_bytes(plan)


def autocast_weight_copy_bytes(model: ModelSpec, plan: Plan) -> tuple[int, str]:
    """Mixed precision (and fp16 full fine-tuning, fp32 master weights too): autocast casts
    each fp32 weight to 16 bits for its matmul and the graph keeps that copy until backward
    (torch.autocast weight cache): 2 B per param."""
    if not (plan.method == "full" and plan.precision in ("mixed", "fp16")):
        return 0, "no fp32 weights to cast"
    n = model.total_params() // (plan.shard_count if plan.shards_params else 1)
    return n * 2, f"{n:,} params x 2 B bf16 copies"


def reference_model_bytes(model: ModelSpec, plan: Plan) -> tuple[int, str]:
    """DPO's frozen reference policy. PEFT methods get it for free by disabling the
    adapters (PeftModel.disable_adapter); full fine-tuning loads a second bf16 copy
    (Rafailov et al. 2023; TRL DPOTrainer's ref_model), unless TRL computes the reference
    log-probs once before training (precompute_ref_log_probs: the policy, still untrained,
    is the reference, and no copy is loaded; trl/trainer/dpo_trainer.py)."""
    if plan.task != "dpo" or plan.method != "full":
        return 0, "none" if plan.task != "dpo" else "adapters disabled for the reference pass"
    if plan.precompute_ref:
        return 0, "reference log-probs computed before training (precompute_ref_log_probs): no reference copy"
    n = model.total_params() // (plan.shard_count if plan.shards_params else 1)
    return n * 2, f"{n:,} params x 2 B (bf16 reference copy)"


# ====================================================================== per-step terms
# Which tensor a linear layer reads: layers of one group read the same tensor.
INPUT_GROUP = {
    "q_proj": "attn_in", "k_proj": "attn_in", "v_proj": "attn_in", "qkv_proj": "attn_in",
    "query_key_value": "attn_in", "c_attn": "attn_in",
    "o_proj": "attn_out", "dense": "attn_out", "c_proj": "attn_out",
    "gate_proj": "mlp_in", "up_proj": "mlp_in", "gate_up_proj": "mlp_in", "dense_h_to_4h": "mlp_in",
    "fc1": "mlp_in", "c_fc": "mlp_in", "w1": "mlp_in", "w3": "mlp_in", "shared_expert_gate": "mlp_in",
    "down_proj": "mlp_mid", "dense_4h_to_h": "mlp_mid", "fc2": "mlp_mid", "w2": "mlp_mid",
    # latent attention: the down projections read the layer's input, the up projections their latents
    "q_a_proj": "attn_in", "kv_a_proj_with_mqa": "attn_in", "q_b_proj": "q_latent", "kv_b_proj": "kv_latent",
    # LFM2: out_proj closes attention or a convolution layer, in_proj opens the convolution
    "out_proj": "attn_out", "in_proj": "attn_in",
}


def _all_linear(model: ModelSpec) -> list[str]:
    fam = model.modules_table()
    return list(fam["attention"]) + list(fam["mlp"])


def _group_width(model: ModelSpec, group: str, inter: int) -> int:
    return {"attn_in": model.hidden_size, "attn_out": model.attn_out_width, "mlp_in": model.hidden_size,
            "mlp_mid": inter, "q_latent": model.q_lora_rank, "kv_latent": model.kv_lora_rank}[group]


def compiled_layers(model: ModelSpec, plan: Plan) -> bool:
    """Whether the layers keep what their compiled graph keeps (knowledge/memory.toml's
    compiled_* rows). Not QLoRA on a LayerNorm family: CUDA autocast's fp32 LayerNorm output
    reaches bitsandbytes' 4-bit layers, which return their output in their input's dtype:
    Pythia-1B QLoRA compiled under TRL (bench/results/shared-h200-1.jsonl) peaked at the
    uncompiled count (0.0%; 11.8% above the compiled one), and a run held out from that,
    under ftplan's loop (shared-h200-5.jsonl), is within 1.7%."""
    return script.compiles(plan) and not (plan.method == "qlora" and model.norm == "layernorm")


def layernorm_input_per_hidden(model: ModelSpec, plan: Plan) -> float:
    """What a LayerNorm keeps of its input. CUDA autocast runs layer_norm in fp32 (PyTorch
    AMP op reference: layer_norm autocasts to float32), so each LayerNorm keeps its own fp32
    copy of its bf16 input; a compiled layer fuses the cast and keeps the bf16 input."""
    a = _k("activations")
    if plan.precision != "fp32" and not compiled_layers(model, plan):
        return a["layernorm_autocast_input_per_hidden"]
    return a["layernorm_input_per_hidden"]


def runs_math_sdpa(model: ModelSpec, plan: Plan, device: str = "cuda") -> bool:
    """Whether the layers' sdpa runs its math kernel (knowledge/targets.toml sdpa_math_kernel).
    On the CPU it also does where the values are narrower than the keys (latent attention):
    the CPU's flash kernel takes one head width for all three (PyTorch sdp_utils_cpp.cpp), where
    CUDA's memory-efficient kernel takes a value width of its own (sdp_utils.cpp,
    check_head_dim_size_mem_efficient)."""
    if device == "cpu":
        narrower_values = model.latent_attention and model.v_head_dim != model.head_dim
        return script.cpu_attention(model, plan) == "sdpa" and (
            narrower_values or model.modules_table().get("sdpa_math_kernel", False))
    if script.attention(model, plan) != "sdpa":
        return False
    return model.modules_table().get("sdpa_math_kernel", False)


def math_sdpa_bytes_per_token(model: ModelSpec, plan: Plan) -> int:
    """Attention through sdpa's math kernel, which a family takes when it always hands sdpa an
    explicit mask with fewer key-value heads than query heads and no enable_gqa (Falcon-7B:
    knowledge/targets.toml sdpa_math_kernel). The kernel computes in fp32 (PyTorch
    aten/src/ATen/native/transformers/attention.cpp, _scaled_dot_product_attention_math:
    "keep query, key, value in high precision") and keeps the fp32 probabilities (S x S per
    head) and fp32 copies of q, k and v. k and v, broadcast over the heads, stay one head
    wide at batch 1 and are copied to every head beyond it (the batched matmul flattens
    batch and heads). The GPU census measures it: bench/results/census-gpu-h200.jsonl.
    Compiled layers keep no such copies: Falcon-7B LoRA b2 s1024 compiled
    (shared-h200-5.jsonl) is +4.2% without them, +9.6% with them."""
    a = _k("activations")
    if model.latent_attention:  # keys and values are per head already
        keys, values = model.q_width, model.v_width
    else:
        keys = values = model.kv_width if plan.batch == 1 or compiled_layers(model, plan) else model.q_width
    return int(a["math_sdpa_probs_per_head_position"] * model.num_heads * plan.seq_len
               + a["math_sdpa_qkv_per_width"] * (model.q_width + keys + values))


def short_conv_bytes_per_token(model: ModelSpec) -> float:
    """What a gated short-convolution layer (LFM2) keeps in transformers' torch path
    (modeling_lfm2.py Lfm2ShortConv and causal_conv1d_fn's reference implementation): in_proj's
    output whole (B and x, views of it, for their product's gradient, and C, kept by C times the
    convolution), the product that the depthwise conv1d reads, and the convolution's output;
    out_proj reads a new tensor (a transposed copy), counted with the linear inputs. The census
    counts it (planner/census.py)."""
    return _k("activations")["linear_input_per_width"] * (3 + 1 + 1) * model.hidden_size


def sdpa_kept_bytes_per_token(model: ModelSpec) -> float:
    """What sdpa's fused kernels keep for backward: q and k after RoPE, v, the output (bf16)
    and the fp32 log-sum-exp per head. Latent attention hands sdpa keys built per head (a new
    tensor, modeling_deepseek_v2.py expand_kv) and values that are a view of kv_b_proj's
    output, so all of that output stays alive: each head's unrotated key part besides its
    value (the census sees it: planner/census.py)."""
    a = _k("activations")
    if model.latent_attention:
        widths = 2 * model.q_width + model.kv_up_width + model.attn_out_width
    else:
        widths = 2 * model.q_width + 2 * model.kv_width
    return a["attention_qkv_out"] * widths + a["attention_lse_per_head"] * model.num_heads


def layer_activation_bytes_per_token(model: ModelSpec, plan: Plan, device: str = "cuda") -> int:
    """Bytes one decoder layer saves for backward per token, without checkpointing.

    Counted tensor by tensor from what autograd keeps in the transformers 5 blocks (the
    saved-tensor census in bench/census.py measures it; tests/planner/test_activation_census.py
    holds this formula to it for every family): the norms' fp32 upcast inputs, sdpa's q, k,
    v, output and log-sum-exp, the MLP's gate/up/activation outputs, and the inputs a
    linear layer keeps for its weight gradient. A frozen linear keeps nothing; a LoRA layer
    whose input PEFT casts keeps its own bf16 copy of it (PEFT casts to the fp32 adapter
    dtype and autocast casts back: a new tensor per layer); with the cast off (our scripts)
    or on a 4-bit base (QLoRA) the adapted layers of a group share one tensor.
    Korthikanti et al. 2022 (table 2) count the same way for a GPT block (34 h B/token).
    Compiled layers keep less: knowledge/memory.toml's compiled_* rows, measured on the H100.
    `model` is one kind of layer (ModelSpec.layer_groups); `device` "cpu" counts the kernels
    the CPU runs, as the census does."""
    a = _k("activations")
    h, q, kv = model.hidden_size, model.q_width, model.kv_width
    # the MLP every token passes through: a MoE block's shared expert, where it has one (its
    # routed experts are moe_routed_bytes_per_token)
    inter = model.shared_intermediate_size if model.is_moe else model.intermediate_size
    full = plan.method == "full"
    adapters = plan.is_low_rank
    # the layers this kind of layer has (a hybrid's attention and convolution layers differ)
    present = model.module_names()
    adapted = [m for m in script.adapted_modules(model, plan) if m in present] if adapters else []
    modules = [m for m in _all_linear(model) if m in present]

    table = model.modules_table()
    compiled = compiled_layers(model, plan)
    rms = a["compiled_rmsnorm_input_per_hidden"] if compiled else a["rmsnorm_input_per_hidden"]
    norm_weight = 0.0
    if full:  # a trainable norm weight keeps the normalised tensor: bf16, or fp32 where the norm computes in fp32
        norm_weight = a["compiled_norm_weight_input_per_hidden"] if compiled else \
            a["norm_weight_input_per_hidden"] * (2 if plan.precision != "bf16" or table.get("norm_weight_fp32") else 1)
    per_norm = rms if model.norm == "rmsnorm" else layernorm_input_per_hidden(model, plan)
    b = model.norms_per_layer * (per_norm + norm_weight) * h
    math_kernel = False
    if model.conv_layer:
        b += short_conv_bytes_per_token(model)
    else:
        if model.qk_norm:
            b += (rms + norm_weight) * (q + kv)
        b += (rms + norm_weight) * (model.q_lora_rank + model.kv_lora_rank)  # latent attention's RMSNorms of its latents
        math_kernel = runs_math_sdpa(model, plan, device)
        if math_kernel:
            b += math_sdpa_bytes_per_token(model, plan)
        else:
            b += sdpa_kept_bytes_per_token(model)
        if table.get("fused_qkv_view") and (plan.method != "full" or table.get("fused_qkv_view_in_full")):
            # a fused qkv projection split by views: sdpa keeps v, a view, so all of the output stays alive
            b += a["attention_qkv_out"] * (q + kv)
        if script.attention(model, plan) == "eager":
            scores = a["compiled_eager_scores_per_head_position"] if compiled else a["eager_scores_per_head_position"]
            b += scores * model.num_heads * plan.seq_len

    zero3 = plan.uses_deepspeed and plan.zero == 3
    kept_groups = set()
    if full or zero3:  # ZeRO-3's linear function saves every input, frozen or not
        kept_groups = {INPUT_GROUP[m] for m in modules}
    elif adapters and not script.copies_adapter_inputs(plan) and plan.dropout == 0:
        kept_groups = {INPUT_GROUP[m] for m in adapted}
    elif plan.method == "ia3":
        feedforward = set(script.ia3_feedforward(model, plan))
        for m in script.adapted_modules(model, plan):
            fan_in, fan_out, copies = model.module_shape(m)
            if m in feedforward:  # IA3 upcasts the input to its fp32 vector and keeps the fp32 copy
                b += a["ia3_input_fp32_per_width"] * fan_in * copies
            else:
                b += a["linear_input_per_width"] * fan_out * copies  # IA3 scales the output and keeps it
    if script.attention(model, plan) != "eager" and not math_kernel and (compiled or not table.get("fused_qkv_view")) \
            and not model.conv_layer:
        # o_proj reads sdpa's output, which sdpa already keeps. Not after a fused qkv projection
        # (q, k and v are strided views, sdpa's output comes back in another layout and the
        # reshape before o_proj copies it) nor after eager attention (which keeps its
        # probabilities, not its output) nor after sdpa's math kernel (which keeps an fp32 copy
        # of its inputs, not its output): the census sees o_proj keep its own input there.
        # Compiled, the partitioner recomputes that copy from sdpa's saved output.
        kept_groups.discard("attn_out")
    if model.mlp == "plain" and full:
        kept_groups.discard("mlp_mid")  # GELU keeps its input; down reads GELU's output, a new tensor
        b += a["linear_input_per_width"] * inter
    b += sum(a["linear_input_per_width"] * _group_width(model, g, inter) for g in kept_groups)
    if model.shared_intermediate_size and model.shared_expert_gated:
        b += a["linear_input_per_width"] * model.hidden_size  # the shared expert's output, kept for its gate's product

    gated = a["compiled_gated_mlp_per_intermediate"] if compiled else a["gated_mlp_per_intermediate"]
    b += (gated if model.mlp == "gated" else a["plain_mlp_per_intermediate"]) * inter
    for m in adapted:
        fan_in, fan_out, copies = model.module_shape(m)
        per = a["lora_a_output_fp32_per_rank" if zero3 else "lora_a_output_per_rank"] * plan.rank
        if script.copies_adapter_inputs(plan):
            per += a["lora_input_copy_fp32_per_width" if zero3 else "lora_input_copy_per_width"] * fan_in
        if plan.dropout > 0:
            per += a["lora_dropout_mask_per_width"] * fan_in
            if not script.copies_adapter_inputs(plan):
                per += a["lora_input_copy_per_width"] * fan_in  # the dropout output is a new bf16 tensor
        if plan.method == "dora":
            per += a["dora_per_out_width"] * fan_out
        b += per * copies
    return int(b + moe_routed_bytes_per_token(model, plan) + kbit_prep_bytes_per_token(model, plan))


def moe_routed_bytes_per_token(model: ModelSpec, plan: Plan) -> float:
    """What a mixture-of-experts block's routed experts save per token: transformers 5 runs
    the fused 3-D expert weights through grouped matmuls (integrations/moe.py,
    grouped_mm_experts_forward) on the token's top-k copies, keeping the gathered hidden
    states, the experts' intermediate tensors, and for trained experts their down
    projection's input and output (the experts train under full fine-tuning, and through
    their folded weights under LoRA on them: expert_lora_weight_bytes); the router keeps its
    fp32 probabilities over every expert and the sort and gather indices of each choice. Counted by the census (planner/census.py,
    the published Mixtral, Qwen3-MoE, OLMoE and Qwen2-MoE configs at a small width:
    tests/planner/test_activation_census.py). Compiled, the activation is recomputed from the
    gate_up output in backward, as in a dense gated MLP (compiled_gated_mlp_per_intermediate);
    the Mixtral-shaped runs on the H200 (bench/results/families-h200.jsonl) hold it."""
    if not model.is_moe:
        return 0.0
    a = _k("activations")
    trained = plan.method == "full" or plan.adapts_experts
    frozen = "compiled_moe_frozen_per_routed_intermediate" if compiled_layers(model, plan) else "moe_frozen_per_routed_intermediate"
    routed_inter = model.experts_per_token * model.moe_intermediate_size
    routed_hidden = model.experts_per_token * model.hidden_size
    return (a["moe_trained_per_routed_intermediate" if trained else frozen] * routed_inter
            + a["moe_trained_per_routed_hidden" if trained else "moe_frozen_per_routed_hidden"] * routed_hidden
            + a["moe_router_per_expert"] * model.num_experts + a["moe_routing_per_choice"] * model.experts_per_token)


def kbit_prep_bytes_per_token(model: ModelSpec, plan: Plan) -> float:
    """What PEFT's prepare_model_for_kbit_training adds to one layer's saved tensors per token.
    It casts the embeddings and norms to fp32 (peft utils/other.py), so the residual stream
    and the norms' outputs are fp32; bitsandbytes' Linear4bit computes in bf16 and hands its
    output back in its input's dtype (bitsandbytes nn/modules.py), so the MLP's projections
    and activation come out fp32, and sdpa's autocast makes bf16 copies of q, k and v. A
    fused qkv output (Phi-3) is fp32 then, so sdpa keeps only its bf16 copy of v, no longer
    a view of the whole output. Measured by the census (bench/census.py, QLoRA on the CPU's
    bitsandbytes; tests/planner/test_activation_census.py) and on the H200
    (bench/results/shared-h200-1.jsonl)."""
    if not plan.kbit_prep:
        return 0.0
    a = _k("activations")
    b = a["kbit_prep_fp32_mlp_per_intermediate"] * model.token_intermediate_size
    if model.modules_table().get("fused_qkv_view"):  # --kbit-prep is QLoRA's: never a full fine-tune
        b -= a["attention_qkv_out"] * (model.q_width + model.kv_width)  # sdpa's v is its own copy, not a view of the output
    else:
        b += a["kbit_prep_attention_cast_per_hidden"] * model.hidden_size
    return b


def checkpoint_kept_bytes(model: ModelSpec, plan: Plan) -> int:
    """Each layer's input, kept by its checkpoint: bf16, or fp32 where --kbit-prep made the
    residual stream fp32 (kbit_prep_bytes_per_token)."""
    per_hidden = _k("activations")["checkpoint_per_hidden"] * (2 if plan.kbit_prep else 1)
    return int(per_hidden * model.hidden_size * script.tokens_per_micro_step(plan) * model.num_layers)


def activation_bytes(model: ModelSpec, plan: Plan) -> tuple[int, str]:
    """Activations alive at the loss, when the forward has finished. Without checkpointing:
    every layer's saved tensors plus the final norm's fp32 input. With it (transformers'
    gradient_checkpointing_enable, one checkpoint per decoder layer; Chen et al. 2016):
    only each layer's bf16 input; the layer recomputed in backward is counted in
    `recomputed_layer`, which comes after the logits are freed."""
    tokens = script.tokens_per_micro_step(plan)
    final_norm = int(_k("activations")["rmsnorm_input_per_hidden"] * model.hidden_size * tokens)
    if plan.grad_ckpt:
        kept = checkpoint_kept_bytes(model, plan)
        return kept + final_norm, f"{model.num_layers} layer inputs x {tokens:,} tokens x {model.hidden_size} x 2 B + final norm"
    every_layer = layers_activation_bytes_per_token(model, plan)
    per_layer = every_layer // model.num_layers
    return every_layer * tokens + final_norm, \
        f"{model.num_layers} layers x {tokens:,} tokens x {per_layer:,} B{' (their mean)' if not model.uniform else ''} + final norm"


def layers_activation_bytes_per_token(model: ModelSpec, plan: Plan) -> int:
    """Every layer's saved bytes per token, each kind of layer by its own count (ModelSpec.layer_groups)."""
    return model.over_layers(lambda group: layer_activation_bytes_per_token(group, plan))


def largest_layer_activation_bytes_per_token(model: ModelSpec, plan: Plan) -> int:
    """The saved bytes per token of the kind of layer that saves the most."""
    return max(layer_activation_bytes_per_token(group, plan) for _, group in model.layer_groups())


def recomputed_layer_bytes(model: ModelSpec, plan: Plan) -> tuple[int, str]:
    """Gradient checkpointing: in backward one layer at a time is run again with its saved
    tensors kept, while every layer's checkpointed input is still alive (Chen et al. 2016)."""
    if not plan.grad_ckpt:
        return 0, "no checkpointing"
    per_layer = largest_layer_activation_bytes_per_token(model, plan) * script.tokens_per_micro_step(plan)
    folded = sum(_folded_experts(model, plan))  # its folded expert weights and the largest one's gradient
    backward = layer_backward_bytes(model, plan)
    experts = f", its folded experts ({folded / 2**20:,.0f} MiB)" if folded else ""
    return checkpoint_kept_bytes(model, plan) + per_layer + folded + backward, \
        f"layer inputs + one layer recomputed ({per_layer / 2**20:,.0f} MiB){experts} and its backward's gradients ({backward / 2**20:,.0f} MiB)"


def layer_backward_bytes(model: ModelSpec, plan: Plan) -> int:
    """The gradients one layer's backward holds beside its saved tensors: the MLP's, of
    intermediate width (the down projection's input, the activation's, gate's and up's
    gradients, bf16), alive together at the backward's peak. The allocator history of a
    checkpointed run (bench/results/shared-h200-2.jsonl, `trl:ckpt-traced`) shows six of them
    beside the two the forward saved when compiled (two runs held out from it are within
    2.6%: shared-h200-3.jsonl); the eager runs hold fewer (knowledge/memory.toml, read from
    the two eager TRL runs in shared-h200-1.jsonl, where the recomputed layer is the peak; a
    third, held out from it, Qwen3-0.6B, is within 3.3%: shared-h200-4.jsonl).
    Full fine-tuning frees each linear's saved input as its weight gradient is made, and its
    checkpointed TRL run is within 2% without this term."""
    if plan.method == "full":
        return 0
    a = _k("activations")
    per = a["compiled_backward_per_intermediate"] if compiled_layers(model, plan) else a["backward_per_intermediate"]
    return int(per * model.widest_intermediate_size * script.tokens_per_micro_step(plan))


def expert_lora_weight_bytes(model: ModelSpec, plan: Plan) -> tuple[int, str]:
    """LoRA on the fused experts: PEFT parametrizes each adapted expert weight as W + scaling x
    B A, built every forward as a new tensor the size of the whole weight (one baddbmm,
    tuners/lora/layer.py _LoraFactorsProxy), which the grouped expert matmuls keep for
    backward; backward makes its gradient, as large, to reach A and B. Without checkpointing
    every MoE layer's are kept, and the first layer backward reaches adds the largest
    gradient; with it, only the recomputed layer's (in `recomputed_layer`)."""
    per_layer, gradient = _folded_experts(model, plan)
    if not per_layer or plan.grad_ckpt:
        return 0, "none" if not per_layer else "with checkpointing: the recomputed layer's only"
    return model.moe_layers * per_layer + gradient, \
        f"{model.moe_layers} MoE layers x {per_layer / 2**20:,.0f} MiB of folded expert weights + one's gradient"


def _folded_experts(model: ModelSpec, plan: Plan) -> tuple[int, int]:
    """(one MoE layer's folded expert weights, the largest one's gradient) in the weights' dtype."""
    parameters = script.adapted_parameters(model, plan)
    if not parameters:
        return 0, 0
    width = _k("dtype_bytes")["fp32" if plan.stores_fp32_weights else "bf16"]
    return model.expert_weight_elements(parameters) * width, max(model.expert_weight_elements([p]) for p in parameters) * width


def logits_rows(model: ModelSpec, plan: Plan) -> int:
    """Rows of logits that exist at once. Standard: every token. Chunked (our script):
    `chunk_tokens`. Fused (Liger's fused linear cross-entropy): Liger sizes its chunk so
    that the logits stay about as large as the hidden states: the next power of two of
    tokens / ceil(vocab / hidden) (liger_kernel ops/fused_linear_cross_entropy.py)."""
    tokens = script.tokens_per_micro_step(plan)
    path = script.loss_path(plan)
    if path == "standard":
        return tokens
    if path == "fused":
        inc = -(-model.vocab_size // model.hidden_size)
        return min(tokens, 1 << max(0, (-(-tokens // inc) - 1).bit_length()))
    if path == "trl":
        return min(tokens, _k("trl_loss")["token_tile"])
    return min(tokens, _k("loss")["chunk_tokens"])


def logits_loss_bytes(model: ModelSpec, plan: Plan) -> tuple[int, str]:
    """The lm_head output and the cross-entropy around it.

    Standard: bf16 logits, their fp32 upcast, log_softmax's saved fp32 output, and in
    backward its fp32 gradient and input gradient: 12 B per logit at the peak (measured:
    docs/guides.md (measurements made before the catalog) and bench/results/memory-h100.jsonl). Chunked (our script's
    chunked loss) and fused (Liger) materialise one chunk of rows at a time (logits_rows);
    Liger also allocates the hidden states' gradient up front. DPO computes per-token
    log-probs for chosen and rejected rows the same way."""
    loss = _k("loss")
    tokens = script.tokens_per_micro_step(plan)
    path = script.loss_path(plan)
    if path == "trl":
        return trl_loss_bytes(model, plan)
    per_logit = loss["dpo_logps_per_logit"] if plan.task == "dpo" else loss["standard_per_logit"]
    rows = logits_rows(model, plan)
    b = int(rows * model.vocab_size * per_logit)
    if path == "standard":
        detail = f"{tokens:,} tokens x {model.vocab_size:,} vocab x {per_logit:g} B"
    else:
        detail = f"{plan.loss}: {rows:,}-token chunk x {model.vocab_size:,} vocab x {per_logit:g} B"
    if path == "fused":
        b += tokens * model.hidden_size * _k("dtype_bytes")["bf16"]
        detail += " + the hidden states' gradient"
    return b, detail


def trl_loss_bytes(model: ModelSpec, plan: Plan) -> tuple[int, str]:
    """TRL's fused LM head (trl kernels/chunked_logprob.py, ChunkedLogProbFunction): no
    logits tensor. The target positions' hidden states are gathered into a copy kept for
    backward, one tile of token_tile x vocab_tile logits in the compute dtype exists at a
    time, and backward accumulates the hidden states' gradient, and the head's when it is
    trained (full fine-tuning), in fp32 before handing them back. Counted for every token
    (a bound: only target positions are projected)."""
    dt = _k("dtype_bytes")
    tokens = script.tokens_per_micro_step(plan)
    hidden = tokens * model.hidden_size * (dt["bf16"] + dt["fp32"] + dt["bf16"])
    b = trl_tile_bytes(model, plan) + hidden
    detail = (f"TRL's fused head: one {logits_rows(model, plan):,} x {_trl_vocab_tile(model):,} tile + the hidden "
              f"states' copy and fp32 gradient")
    if plan.method == "full":
        b += model.vocab_size * model.hidden_size * dt["fp32"]
        detail += " + the head's fp32 gradient"
    return int(b), detail


def _trl_vocab_tile(model: ModelSpec) -> int:
    return min(model.vocab_size, _k("trl_loss")["vocab_tile"])


def trl_tile_bytes(model: ModelSpec, plan: Plan) -> int:
    """One tile of TRL's fused head: token_tile positions x vocab_tile entries in the compute dtype."""
    return logits_rows(model, plan) * _trl_vocab_tile(model) * _k("dtype_bytes")["bf16"]


def transient_weight_bytes(model: ModelSpec, plan: Plan) -> tuple[int, str]:
    """Full-size weights built during the step: QLoRA dequantizes each 4-bit layer to bf16
    for its matmul (bitsandbytes MatMul4Bit); DoRA materialises lora_B @ lora_A and the
    combined weight in fp32 to take its column norm (PEFT tuners/lora/dora.py). Only the
    largest layer's copies coexist."""
    _, _, largest = script.adapted_widths(model, plan)
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
    set knowledge/distributed.toml's bucket_elements each. FSDP prefetches one wrapped block
    ahead (torch FSDP docs)."""
    if plan.uses_deepspeed:
        bucket = knowledge.table("distributed")["deepspeed"]["bucket_elements"]
        elems = bucket * (2 if plan.zero >= 2 else 1)
        return int(min(elems, script.trainable_params(model, plan)) * 2), f"DeepSpeed buckets, {bucket:,} elements x 2 B each"
    if plan.engine == "fsdp":
        return model.layer_params() * 2, "one prefetched block x 2 B"
    return 0, "none"


def loss_block_bytes(model: ModelSpec, plan: Plan) -> int:
    """The largest buffer of the loss: one fp32 copy of the logits (or of one chunk); TRL's
    fused head keeps one tile in the compute dtype."""
    if script.loss_path(plan) == "trl":
        return trl_tile_bytes(model, plan)
    return logits_rows(model, plan) * model.vocab_size * _k("dtype_bytes")["fp32"]


def allocator_overhead(model: ModelSpec, plan: Plan, at_peak: list[Term]) -> Term:
    """What torch reserves beyond what it has allocated at the peak (PyTorch caching
    allocator, expandable segments).

    The loss frees its fp32 upcast of the logits before backward asks for two fp32 buffers
    of the same size (the log-softmax gradient and its input gradient): the freed block
    holds one of them, the other maps new memory, and the freed bf16 logits beside it are
    too small to help. That leaves half an fp32 logits block reserved but unused, or a whole
    one when a block the first step leaves behind (the backward thread's cuBLAS workspace,
    optimizer states) splits the freed region and later steps' logits start above it; the
    term takes a value between the two (knowledge/memory.toml [overhead]). The rest of the step's
    allocations waste a small fraction. Read off the H100 matrix (reserved minus allocated)
    and explained by replaying the allocator's recorded histories (bench/allocator_sim.py)."""
    o = _k("overhead")
    paged = sum(t.bytes for t in at_peak if t.name == "optimizer_states") if plan.optim.startswith("paged") else 0
    allocated = sum(t.bytes for t in at_peak) - paged
    hole = int(o["loss_hole_fraction"] * loss_block_bytes(model, plan))
    rest = int(o["fragmentation"] * allocated)
    return Term("allocator_overhead", hole + rest,
                f"{o['loss_hole_fraction']:g} x the fp32 logits block ({hole / 2**30:.2f} GiB) + {o['fragmentation']:.0%} of allocated",
                _first_line(allocator_overhead.__doc__))


def cuda_context_bytes(model: ModelSpec, plan: Plan) -> tuple[int, str]:
    """CUDA context and kernel images: NVML-visible memory that torch never reserves
    (measured: NVML used minus torch reserved on the H100, docs/guides.md (measurements made before the catalog))."""
    return int(_k("overhead")["cuda_context_bytes"]), "measured on the H100 (torch 2.11, CUDA 13)"


TERMS = (
    ("weights", base_weight_bytes),
    ("adapter_weights", adapter_weight_bytes),
    ("gradients", gradient_bytes),
    ("optimizer_states", optimizer_state_bytes),
    ("autocast_weight_copies", autocast_weight_copy_bytes),
    ("reference_model", reference_model_bytes),
    ("transient_weights", transient_weight_bytes),
    ("engine_buffers", engine_buffer_bytes),
    ("activations", activation_bytes),
    ("expert_lora_weights", expert_lora_weight_bytes),
    ("logits_and_loss", logits_loss_bytes),
    ("recomputed_layer", recomputed_layer_bytes),
)
# Memory that lives through the whole step; the rest belongs to one phase of it.
LOSS_PHASE = ("activations", "expert_lora_weights", "logits_and_loss")
BACKWARD_PHASE = ("gradients", "recomputed_layer")


def host_ram_bytes(model: ModelSpec, plan: Plan) -> int:
    """Host RAM of one training process (one per GPU): the process itself (measured), the
    weights while from_pretrained reads them, plus what offload keeps there. DeepSpeed's optimizer offload keeps the fp32 master weights,
    two fp32 states and the fp32 gradients of this GPU's shard (16 B per param, Ren et al.
    2021) and buffers of its own (8 B, measured); parameter offload adds the bf16 parameters
    (ZeRO-Infinity, Rajbhandari et al. 2021). FSDP2's CPU offload keeps parameters, gradients
    and optimizer states of the shard in their own dtypes (torch CPUOffloadPolicy)."""
    host = _k("host")
    b = host["process_bytes"]
    if plan.method != "qlora":  # from_pretrained reads the weights into host RAM before they move to the GPU
        b += model.total_params() * (4 if plan.stores_fp32_weights else 2)
    if plan.offload == "none":
        return int(b)
    n = script.trainable_params(model, plan)
    shards = plan.shard_count
    if plan.engine == "fsdp":
        width = script.trainable_dtype_bytes(plan)
        params = model.total_params() * (4 if plan.stores_fp32_weights and plan.method != "qlora" else 2)
        b += (params + n * (width + _k("optimizer")["adamw_states"] * width)) / shards
        return int(b)
    b += n * host["deepspeed_offload_per_param"] / shards
    if plan.offload == "all":
        b += model.total_params() * 2 / shards
    return int(b)


# ====================================================================== the estimate
def _terms(model: ModelSpec, plan: Plan) -> tuple[list[Term], str]:
    """Every term, with the ones that are not alive at the step's peak marked.

    A step has two candidate peaks: at the loss, when the forward's activations and the
    logits buffers are alive, and late in backward, when the gradients exist (and, with
    checkpointing, a recomputed layer). The script zeroes gradients with set_to_none, so
    with one micro-batch per step they do not exist at the loss; with accumulation they do."""
    terms = {}
    for name, fn in TERMS:
        b, detail = fn(model, plan)
        if b:
            terms[name] = Term(name, int(b), detail, _first_line(fn.__doc__))
    loss_phase = set(LOSS_PHASE) | ({"gradients"} if plan.grad_accum > 1 else set())
    phase_bytes = {
        "at the loss (forward done, logits alive)": sum(t.bytes for n, t in terms.items() if n in loss_phase),
        "in backward (gradients allocated)": sum(t.bytes for n, t in terms.items() if n in BACKWARD_PHASE),
    }
    peak = max(phase_bytes, key=phase_bytes.get)
    in_peak = loss_phase if peak.startswith("at the loss") else set(BACKWARD_PHASE)
    out = []
    for name, t in terms.items():
        phased = name in LOSS_PHASE or name in BACKWARD_PHASE
        out.append(t if not phased or name in in_peak else Term(t.name, t.bytes, t.detail + " (not at the peak)", t.source, False))
    out.append(allocator_overhead(model, plan, [t for t in out if t.at_peak]))
    b, detail = cuda_context_bytes(model, plan)
    out.append(Term("cuda_context", b, detail, _first_line(cuda_context_bytes.__doc__)))
    margin = evidence_margin(model, plan, sum(t.bytes for t in out if t.at_peak))
    if margin.bytes:
        out.append(margin)
    return out, peak


def evidence_margin(model: ModelSpec, plan: Plan, peak: int) -> Term:
    """A family never measured on a GPU gets a margin on top of its estimate, so the fit
    verdict holds where the formulas meet an architecture they were not fitted on
    (knowledge/evidence.toml; docs/guides.md#evidence-behind-an-estimate)."""
    ev = evidence.of(model, plan)
    what = model.family if plan.trainer == "ftplan" else f"{model.family} under {plan.trainer.upper()}"
    if evidence.measured_row(model, plan.trainer) is not None:  # the family is measured; a setting of the plan is not
        what = "a setting of this plan"
    return Term("evidence_margin", int(peak * ev.margin), f"{ev.margin:.0%} of the above: {what} is derived, not measured",
                _first_line(evidence_margin.__doc__))


def _first_line(doc: str | None) -> str:
    return " ".join((doc or "").strip().split("\n\n")[0].split())


def total_bytes(model: ModelSpec, plan: Plan) -> int:
    return sum(t.bytes for t in _terms(model, plan)[0] if t.at_peak)


def estimate(model: ModelSpec, plan: Plan, gpu: GpuSpec | None = None, max_micro_batch: int | None = None) -> Estimate:
    """The estimate of one plan; `max_micro_batch` is the search's answer (planner/search.py),
    shown beside it."""
    validate(plan, model)
    terms, peak = _terms(model, plan)
    terms = tuple(terms)
    kernel = script.attention(model, plan)
    assumptions = [
        f"attention: {kernel}" + ("" if kernel == "eager" else " (math kernel: fp32 probabilities kept)"
                                  if runs_math_sdpa(model, plan) else " (no stored score matrix)"),
        "adapters in fp32 (PEFT default), compute under bf16 autocast" if plan.is_peft else
        f"full fine-tuning, {plan.precision} weights",
        "peak of a steady-state step (optimizer states allocated)",
    ]
    if plan.task == "dpo":
        reference = "reference log-probs computed before training" if plan.precompute_ref else "reference pass under no_grad"
        assumptions.append(f"DPO: chosen and rejected in one forward (2 x batch); {reference}")
    if model.conv_layers:
        assumptions.append(f"hybrid: {model.conv_layers} of {model.num_layers} layers mix tokens by a short convolution, "
                           f"counted as transformers' torch path runs it (its reference causal_conv1d_fn; the "
                           f"causal-conv1d package's kernel, where installed, keeps other tensors)")
    if model.is_moe:
        if plan.adapts_experts:
            linear = ("the fused experts take LoRA through PEFT's target_parameters, folded into a copy of their "
                      "whole weights every forward")
        elif model.mlp_lora_moves_to_experts:
            linear = ("all-linear adapts attention only: PEFT would put LoRA asked for the dense and shared MLPs "
                      "on the fused experts; add experts to --targets to adapt them")
        elif model.shared_intermediate_size:
            linear = "all-linear adapts attention and the shared experts (fused experts are not nn.Linear)"
        else:
            linear = "all-linear adapts attention only (fused experts are not nn.Linear: add experts to --targets)"
        assumptions.append(f"MoE: activations for the experts each token uses; {linear}; QLoRA leaves the experts bf16")
        if model.dense_layers:
            assumptions.append(f"the first {model.dense_layers} layer(s) have a dense MLP, the rest experts; each kind "
                               f"counted as it is")
        if script.balances_routers(model, plan):
            assumptions.append("MoE full fine-tuning: the routers train with their load-balancing loss (the model's "
                               "load_balancing_loss_func x router_aux_loss_coef), as TRL's trainers add it")
    return Estimate(
        plan=plan, model=model, terms=terms, gpu=gpu, trainable_params=script.trainable_params(model, plan),
        host_ram_bytes=host_ram_bytes(model, plan),
        max_micro_batch=max_micro_batch,
        assumptions=tuple(assumptions), peak_phase=peak,
    )
