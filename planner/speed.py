"""Speed: which switches a plan's script really uses, and a step-time model calibrated on
our rendered scripts on the H100 (knowledge/speed.toml, bench/results/speed-h100.jsonl).

The step time is a sum of named terms, each a count of work (FLOPs, bytes, kernel
launches) divided by what the GPU does per second (its datasheet bf16 FLOP/s and memory
bandwidth) and multiplied by a fitted efficiency coefficient: 1 / coefficient is the share
of the datasheet rate our scripts reach for that kind of work (bench/fit_speed.py fits them
by a linear program that minimises the worst relative error; the engine terms are set by
hand from their runs, knowledge/speed.toml says how)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from planner import knowledge, script
from planner.hardware import GpuSpec
from planner.memory import layers_activation_bytes_per_token, runs_math_sdpa
from planner.plan import Plan
from planner.spec import ModelSpec


def matmul_flops(model: ModelSpec, plan: Plan) -> float:
    """Dense matmul FLOPs of one micro-step: 2 per weight per token forward; backward 2 for
    the input gradient and, for trained weights only, 2 for the weight gradient (frozen
    weights skip it: 4N + 6N_adapter rather than 6N; docs/guides.md (measurements made before the catalog), Kaplan et al.
    2020); checkpointing runs the layers' forward again; DPO adds the reference forward; the
    chunked loss recomputes the head in backward. A mixture-of-experts token passes through
    the experts it is routed to (top-k), not all of them (Shazeer et al. 2017; Fedus et al. 2022)."""
    tokens = plan.rows_per_micro_step * plan.seq_len
    blocks, head = model.active_linear_params(), model.vocab_size * model.hidden_size
    trained = blocks + head if plan.method == "full" else 0
    # the experts' LoRA is folded into their weights, not run per token (expert_fold_bytes)
    adapters = script.trainable_params(model, plan) - model.expert_lora_params(script.adapted_parameters(model, plan), plan.rank) \
        if plan.is_low_rank else 0
    per_token = 2 * (blocks + head) + 2 * (blocks + head) + 2 * trained + 6 * adapters
    if plan.grad_ckpt:
        per_token += 2 * blocks
    if plan.task == "dpo":
        per_token += 2 * (blocks + head)
    if script.loss_path(plan) in ("chunked", "trl"):  # the head runs again in backward, a chunk or tile at a time
        per_token += 2 * head
    return float(tokens * per_token)


def attention_flops(model: ModelSpec, plan: Plan) -> float:
    """Causal attention: QK^T and PV are 4 S q FLOPs per token per layer, halved by the causal
    mask; backward is 2.5 times the forward (FlashAttention-2, Dao 2023); checkpointing and the
    DPO reference add forwards."""
    tokens = plan.rows_per_micro_step * plan.seq_len
    forward = plan.seq_len * (model.q_width + model.attn_out_width) * model.attention_layers * tokens  # QK^T, then PV
    passes = 1 + 2.5 + (1 if plan.grad_ckpt else 0) + (1 if plan.task == "dpo" else 0)
    return forward * passes


def activation_traffic_bytes(model: ModelSpec, plan: Plan) -> float:
    """Pointwise work (norms, activation functions, residual adds, casts, dropout) reads and
    writes about what a layer saves for backward: the saved-tensor bytes of the memory model
    stand in for it."""
    passes = 1 + (1 if plan.grad_ckpt else 0) + (0.5 if plan.task == "dpo" else 0)
    return float(layers_activation_bytes_per_token(model, plan) * plan.rows_per_micro_step * plan.seq_len * passes)


def logits_traffic_bytes(model: ModelSpec, plan: Plan) -> float:
    """The loss reads and writes the [tokens, vocab] logits a few times (bf16 out, fp32 upcast,
    log-softmax, their gradients). The fused loss does the same work a chunk at a time (Liger's
    fused linear cross-entropy: logits, softmax and their gradient per chunk, in forward), at
    its own rate: fused_logits_traffic_bytes."""
    return 0.0 if script.loss_path(plan) == "fused" else _logits(model, plan)


def fused_logits_traffic_bytes(model: ModelSpec, plan: Plan) -> float:
    return _logits(model, plan) if script.loss_path(plan) == "fused" else 0.0


def _logits(model: ModelSpec, plan: Plan) -> float:
    """[tokens, vocab] entries of one micro-step (DPO's reference pass reads them again)."""
    return float(plan.rows_per_micro_step * plan.seq_len * model.vocab_size * (2 if plan.task == "dpo" else 1))


def layer_passes(plan: Plan, reference: bool = True) -> int:
    """Passes through a layer per micro-step: forward and backward, the forward again under
    checkpointing, and DPO's reference forward (`reference`: the adapters sit that one out,
    the template disables them for it)."""
    return 2 + (1 if plan.grad_ckpt else 0) + (1 if reference and plan.task == "dpo" else 0)


def dequant_bytes(model: ModelSpec, plan: Plan) -> float:
    """QLoRA dequantizes every 4-bit weight to bf16 for each matmul pass that reads it (fused
    MoE experts stay bf16: nothing to dequantize)."""
    if plan.method != "qlora":
        return 0.0
    return float(model.quantized_params() * layer_passes(plan))


def expert_fold_bytes(model: ModelSpec, plan: Plan) -> float:
    """LoRA on the fused experts folds every adapted expert weight into a new one each forward
    (planner/memory.py expert_lora_weight_bytes), and backward makes the folded weight's
    gradient: per pass through a layer, work on the scale of the experts' weights, whatever
    the tokens. Counted as their bytes per pass; DPO's reference forward runs without the
    adapters. What a byte costs is measured (knowledge/speed.toml expert_fold)."""
    parameters = script.adapted_parameters(model, plan)
    if not parameters:
        return 0.0
    return float(model.moe_layers * model.expert_weight_elements(parameters) * 2 * layer_passes(plan, reference=False))


def expert_weight_grad_flops(model: ModelSpec, plan: Plan) -> float:
    """The routed experts' grouped matmuls compute their weights' gradients once the experts
    are trained through their folded weights: 2 FLOPs per routed expert weight per token,
    which frozen experts skip (knowledge/speed.toml expert_weight_grads)."""
    parameters = script.adapted_parameters(model, plan)
    if not parameters:
        return 0.0
    routed = model.moe_layers * model.experts_per_token * model.expert_weight_elements(parameters) / model.num_experts
    return float(plan.rows_per_micro_step * plan.seq_len * 2 * routed)


def dora_bytes(model: ModelSpec, plan: Plan) -> float:
    """DoRA builds each adapted layer's full weight to take its column norms, every forward."""
    if plan.method != "dora":
        return 0.0
    return float(model.linear_params() * layer_passes(plan, reference=False))


def layer_launches(model: ModelSpec, plan: Plan) -> float:
    """Per-layer fixed cost of compiled layers (one graph's kernels and guards) per micro-step."""
    return float(model.num_layers * layer_passes(plan))


def _module_passes(model: ModelSpec, plan: Plan, modules: list) -> float:
    """Adapted modules run in every pass but DPO's adapter-free reference forward."""
    return float(len(modules) * model.num_layers * layer_passes(plan, reference=False))


def eager_ops(model: ModelSpec, plan: Plan) -> float:
    """Ops an eager micro-step dispatches (knowledge/speed.toml [ops], counted by
    bench/census.py --ops): each layer's forward (again under checkpointing, and for DPO's
    reference pass without adapters) and backward (with the weights trained or frozen), plus
    each adapted module's own ops."""
    ops = knowledge.table("speed")["ops"]
    row = ops.get(model.family, ops["llama"])
    adapter = ops["adapter"]
    kind = {"qlora": "lora"}.get(plan.method, plan.method)
    n = len(script.adapted_modules(model, plan))
    forward = row["forward"] + n * adapter.get(f"{kind}_forward", 0)
    backward = row["backward_trained" if plan.method == "full" else "backward_frozen"] + n * adapter.get(f"{kind}_backward", 0)
    per_layer = forward * (2 if plan.grad_ckpt else 1) + backward + (row["forward"] if plan.task == "dpo" else 0)
    return float(model.num_layers * per_layer)


def adapter_traffic_bytes(model: ModelSpec, plan: Plan) -> float:
    """Eager LoRA-style adapters read and write full-width activations outside the base
    matmul: the input for A, B's output, its scaling and the add into the base output, and
    their gradients (PEFT tuners/lora/layer.py Linear.forward): 2 B per element of every
    adapted layer's input and output width per pass. Compilation fuses them into the layer."""
    if not plan.is_low_rank:
        return 0.0
    ins, outs, _ = script.adapted_widths(model, plan)
    return float(plan.rows_per_micro_step * plan.seq_len * (ins + outs) * 2 * model.num_layers
                 * layer_passes(plan, reference=False))


def adapter_toggles(model: ModelSpec, plan: Plan) -> float:
    """DPO's reference pass turns the adapters off and on again (PEFT disable_adapter walks
    every adapted module and sets requires_grad on its weights): twice per micro-step."""
    if plan.task != "dpo" or not plan.is_low_rank:
        return 0.0
    return float(2 * model.num_layers * len(script.adapted_modules(model, plan)))


def trainable_tensors(model: ModelSpec, plan: Plan) -> float:
    """Parameter tensors the optimizer steps: bitsandbytes' 8-bit AdamW launches per tensor,
    torch's fused AdamW groups them but still walks them in Python."""
    if plan.method == "full":
        return float(model.num_layers * (len(model.target_modules("all-linear")) + model.norms_per_layer) + 3)
    per_module = {"lora": 2, "qlora": 2, "dora": 3}.get(plan.method, 1)  # A and B, DoRA's magnitude
    return float(model.num_layers * max(1, len(script.adapted_modules(model, plan))) * per_module)


def ia3_launches(model: ModelSpec, plan: Plan) -> float:
    """IA3 scales each adapted activation by a learned vector: one small kernel per module
    per pass, fewer than a LoRA module's (PEFT tuners/ia3/layer.py)."""
    if plan.method != "ia3":
        return 0.0
    return _module_passes(model, plan, script.adapted_modules(model, plan))


def dora_launches(model: ModelSpec, plan: Plan) -> float:
    """DoRA adds, per adapted module and pass, the kernels that rebuild the weight and its
    column norm (an identity through A and B, the add, the norm, the rescale; PEFT
    tuners/lora/dora.py): launch-bound on small models."""
    if plan.method != "dora":
        return 0.0
    return _module_passes(model, plan, script.adapted_modules(model, plan))


def loss_chunks(model: ModelSpec, plan: Plan) -> float:
    """The chunked loss runs one checkpointed chunk of LOSS_CHUNK tokens at a time."""
    if script.loss_path(plan) != "chunked":
        return 0.0
    chunk = knowledge.table("memory")["loss"]["chunk_tokens"]
    return float(math.ceil(plan.rows_per_micro_step * plan.seq_len / chunk) * (3 if plan.task == "dpo" else 2))


def communication_bytes(model: ModelSpec, plan: Plan) -> float:
    """Bytes each GPU sends per optimizer step in a ring (NCCL's ring all-reduce moves
    2 (W-1)/W of the buffer; Patarasuk & Yuan 2009): the gradients once per step (DDP,
    ZeRO-1/2 reduce-scatter + all-gather of the update), and under ZeRO-3/FSDP the
    parameters gathered again in forward and backward of every micro-step."""
    w = plan.world_size
    if w == 1:
        return 0.0
    ring = 2 * (w - 1) / w
    b = ring * script.trainable_params(model, plan) * script.trainable_dtype_bytes(plan)
    if plan.shards_params:
        gathered = plan.shard_count
        b += plan.grad_accum * 2 * (gathered - 1) / gathered * model.total_params() * 2
    return float(b)


def link_gbs(plan: Plan, gpu: GpuSpec) -> float:
    """The slowest link the ring crosses: the GPUs' own interconnect in one node, the network
    between nodes (knowledge/speed.toml [network])."""
    intra = gpu.interconnect_gbs or knowledge.table("speed")["network"]["pcie_fallback_gbs"]
    if plan.nodes > 1:
        return min(intra, knowledge.table("speed")["network"]["inter_node_gbs_per_gpu"])
    return intra


def zero3_module_passes(model: ModelSpec, plan: Plan) -> float:
    """DeepSpeed ZeRO-3 hooks every module that holds parameters to gather them before it runs
    and release them after, forward and backward (deepspeed/runtime/zero/parameter_offload.py),
    even on one GPU: the decoder's linear layers, two norms a layer, LoRA's A and B."""
    if not (plan.uses_deepspeed and plan.zero == 3):
        return 0.0
    linears = len(model.target_modules("all-linear"))
    adapters = 2 * len(script.adapted_modules(model, plan)) if plan.is_low_rank else 0
    return float((model.num_layers * (linears + 2 + adapters) + 3) * layer_passes(plan, reference=False))


def deepspeed_master_bytes(model: ModelSpec, plan: Plan) -> float:
    """DeepSpeed's bf16 optimizer steps fp32 master weights on the GPU, moving
    knowledge/speed.toml's [deepspeed] master_step_bytes_per_param for each trained parameter
    of the shard; torch's fused AdamW steps the bf16 weights in place."""
    if not plan.uses_deepspeed or plan.offload != "none":
        return 0.0
    per_param = float(knowledge.table("speed")["deepspeed"]["master_step_bytes_per_param"])
    return per_param * optimizer_params(model, plan) / plan.shard_count


def optimizer_params(model: ModelSpec, plan: Plan) -> float:
    return float(script.trainable_params(model, plan))


@dataclass(frozen=True)
class Feature:
    name: str
    unit: str       # what the raw count is divided by: "flops", "bytes" or "seconds"
    detail: str


# Fitted elsewhere than bench/fit_speed.py (their runs are not in its files): kept as set in knowledge/speed.toml.
SET_BY_HAND = ("cpu_optimizer_deepspeed", "cpu_optimizer_torch", "zero3_hooks", "deepspeed_master", "communication",
               "attention_math", "expert_fold", "expert_weight_grads")

FEATURES = (
    Feature("matmul", "flops", "dense matmuls"),
    Feature("attention", "flops", "attention (sdpa)"),
    Feature("attention_math", "flops", "attention (sdpa's math kernel, fp32, every score computed)"),
    Feature("pointwise_eager", "bytes", "pointwise work, eager layers"),
    Feature("pointwise_compiled", "bytes", "pointwise work, compiled layers"),
    Feature("logits", "bytes", "logits and loss"),
    Feature("logits_fused", "bytes", "logits and loss, fused a chunk at a time"),
    Feature("dequant", "bytes", "4-bit dequantization"),
    Feature("dora", "bytes", "DoRA weight norms"),
    Feature("expert_fold", "bytes", "LoRA folded into the fused experts' weights, and back"),
    Feature("expert_weight_grads", "flops", "the routed experts' weight gradients (LoRA on the experts)"),
    Feature("dispatch_eager", "seconds", "ops dispatched by eager layers, per op"),
    Feature("launch_compiled", "seconds", "per-layer launch overhead, compiled"),
    Feature("adapter_traffic_eager", "bytes", "eager adapters' full-width activations"),
    Feature("adapter_toggle", "seconds", "DPO's adapter switch for the reference pass, per module"),
    Feature("ia3_launch", "seconds", "per-IA3-module launch overhead"),
    Feature("dora_launch", "seconds", "DoRA's per-module weight-norm kernels"),
    Feature("loss_chunks", "seconds", "chunked loss, per chunk"),
    Feature("communication", "seconds", "gradient / parameter exchange between GPUs (datasheet links, not calibrated)"),
    Feature("cpu_optimizer_deepspeed", "seconds", "optimizer step on the CPU (DeepSpeed's CPU Adam, offload)"),
    Feature("cpu_optimizer_torch", "seconds", "optimizer step on the CPU (torch AdamW, FSDP offload)"),
    Feature("zero3_hooks", "seconds", "ZeRO-3's gather and release hooks, per module with parameters"),
    Feature("deepspeed_master", "bytes", "DeepSpeed's fp32 master step on the GPU"),
    Feature("optimizer_fused", "bytes", "optimizer step (fused AdamW)"),
    Feature("optimizer_8bit", "bytes", "optimizer step (bitsandbytes 8-bit)"),
    Feature("optimizer_tensors_fused", "seconds", "optimizer step per parameter tensor (fused AdamW)"),
    Feature("optimizer_tensors_8bit", "seconds", "optimizer step per parameter tensor (bitsandbytes 8-bit)"),
)


def raw_features(model: ModelSpec, plan: Plan, gpu: GpuSpec) -> dict[str, float]:
    """Each feature's work divided by the GPU's datasheet rate: seconds at 100% efficiency."""
    flops = gpu.bf16_tflops * 1e12
    bw = gpu.bandwidth_gbs * 1e9
    compiled = script.compiles(plan)
    math_kernel = runs_math_sdpa(model, plan)
    act = activation_traffic_bytes(model, plan)
    cpu_params = optimizer_params(model, plan) / plan.shard_count if plan.offload != "none" else 0.0
    accum = plan.grad_accum
    optimizer = optimizer_params(model, plan)
    return {
        "matmul": accum * matmul_flops(model, plan) / flops,
        # sdpa's fused attention reaches less of the datasheet rate than the dense matmuls,
        # and the long-sequence runs tell the two apart
        "attention": 0.0 if math_kernel else accum * attention_flops(model, plan) / flops,
        # the math kernel computes every score, masked or not, in fp32 (planner/memory.py runs_math_sdpa)
        "attention_math": 2 * accum * attention_flops(model, plan) / flops if math_kernel else 0.0,
        "pointwise_eager": 0.0 if compiled else accum * act / bw,
        "pointwise_compiled": accum * act / bw if compiled else 0.0,
        "logits": accum * logits_traffic_bytes(model, plan) / bw,
        "logits_fused": accum * fused_logits_traffic_bytes(model, plan) / bw,
        "dequant": accum * dequant_bytes(model, plan) / bw,
        "dora": accum * dora_bytes(model, plan) / bw,
        "expert_fold": accum * expert_fold_bytes(model, plan) / bw,
        "expert_weight_grads": accum * expert_weight_grad_flops(model, plan) / flops,
        "dispatch_eager": 0.0 if compiled else accum * eager_ops(model, plan) * 1e-3,
        "launch_compiled": accum * layer_launches(model, plan) * 1e-3 if compiled else 0.0,
        "adapter_traffic_eager": 0.0 if compiled else accum * adapter_traffic_bytes(model, plan) / bw,
        "adapter_toggle": accum * adapter_toggles(model, plan) * 1e-3,
        "ia3_launch": accum * ia3_launches(model, plan) * 1e-3,
        "dora_launch": accum * dora_launches(model, plan) * 1e-3,
        "loss_chunks": accum * loss_chunks(model, plan) * 1e-3,
        "communication": communication_bytes(model, plan) / (link_gbs(plan, gpu) * 1e9),
        "cpu_optimizer_deepspeed": cpu_params * 1e-9 if plan.uses_deepspeed else 0.0,
        "cpu_optimizer_torch": 0.0 if plan.uses_deepspeed else cpu_params * 1e-9,
        "zero3_hooks": accum * zero3_module_passes(model, plan) * 1e-3,
        "deepspeed_master": deepspeed_master_bytes(model, plan) / bw,
        "optimizer_fused": optimizer / bw if plan.optim == "adamw" and plan.offload == "none" else 0.0,
        "optimizer_8bit": optimizer / bw if plan.optim != "adamw" else 0.0,
        "optimizer_tensors_fused": trainable_tensors(model, plan) * 1e-3 if plan.optim == "adamw" and plan.offload == "none" else 0.0,
        "optimizer_tensors_8bit": trainable_tensors(model, plan) * 1e-3 if plan.optim != "adamw" else 0.0,
    }


@dataclass(frozen=True)
class SpeedTerm:
    name: str
    seconds: float
    detail: str


@dataclass(frozen=True)
class SpeedEstimate:
    """Time of one optimizer step as named terms, and what follows from it."""
    plan: Plan
    gpu: GpuSpec
    terms: tuple[SpeedTerm, ...]
    tokens_per_step: int           # real tokens per optimizer step over all GPUs
    model_flops_per_step: float    # matmul + attention FLOPs per optimizer step, one GPU
    dataset_tokens: int | None
    epochs: float
    price_per_hour: float

    @property
    def step_s(self) -> float:
        return sum(t.seconds for t in self.terms)

    @property
    def tokens_per_s(self) -> float:
        return self.tokens_per_step / self.step_s

    @property
    def mfu(self) -> float:
        """Model FLOPs utilisation: the FLOPs the plan needs (frozen weights skip their weight
        gradient) per second, over the GPU's datasheet bf16 rate."""
        return self.model_flops_per_step / self.step_s / (self.gpu.bf16_tflops * 1e12)

    @property
    def total_steps(self) -> int | None:
        if not self.dataset_tokens:
            return None
        return max(1, math.ceil(self.dataset_tokens * self.epochs / self.tokens_per_step))

    @property
    def total_s(self) -> float | None:
        steps = self.total_steps
        return None if steps is None else steps * self.step_s

    @property
    def cost(self) -> float | None:
        total = self.total_s
        return None if total is None else total / 3600 * self.price_per_hour * self.plan.world_size

    def as_dict(self) -> dict:
        return {
            "step_s": round(self.step_s, 4), "tokens_per_s": round(self.tokens_per_s, 1), "mfu": round(self.mfu, 4),
            "tokens_per_step": self.tokens_per_step, "dataset_tokens": self.dataset_tokens, "epochs": self.epochs,
            "total_steps": self.total_steps, "total_s": None if self.total_s is None else round(self.total_s, 1),
            "gpu_hours": None if self.total_s is None else round(self.total_s / 3600 * self.plan.world_size, 3),
            "price_per_gpu_hour": self.price_per_hour, "cost": None if self.cost is None else round(self.cost, 2),
            "terms": [{"name": t.name, "seconds": round(t.seconds, 5), "detail": t.detail} for t in self.terms],
            "compiled": script.compiles(self.plan),
            "scope": "one GPU's compute; data-parallel communication is not modelled",
        }


def estimate(model: ModelSpec, plan: Plan, gpu: GpuSpec, dataset_tokens: int | None = None,
             epochs: float | None = None, price_per_hour: float | None = None) -> SpeedEstimate | None:
    """Step time, tokens/s, MFU, total time and cost of `plan` on `gpu` (knowledge/speed.toml
    [model]); None for a card without datasheet figures (a detected GPU the catalog lacks)."""
    if gpu.bf16_tflops <= 0 or gpu.bandwidth_gbs <= 0:
        return None
    coef = knowledge.table("speed")["model"]
    raw = raw_features(model, plan, gpu)
    terms = tuple(SpeedTerm(f.name, raw[f.name] * float(coef[f.name]), f.detail)
                  for f in FEATURES if raw[f.name] * float(coef[f.name]) > 0)
    flops = plan.grad_accum * (matmul_flops(model, plan) + attention_flops(model, plan))
    return SpeedEstimate(
        plan=plan, gpu=gpu, terms=terms,
        tokens_per_step=plan.batch * plan.seq_len * plan.grad_accum * plan.world_size * (2 if plan.task == "dpo" else 1),
        model_flops_per_step=flops, dataset_tokens=dataset_tokens,
        epochs=plan.epochs if epochs is None else epochs,
        price_per_hour=gpu.price_per_hour_usd if price_per_hour is None else price_per_hour,
    )


def _lever(lever_id: str) -> dict:
    return next(r for r in knowledge.rows("speed", "lever") if r["id"] == lever_id)


def explain(model: ModelSpec, plan: Plan) -> list[str]:
    """The speed choices of a plan's script, each with the measurement behind it: the lines
    the rendered train.py carries in its header."""
    lines = []
    if script.packs(model, plan):
        kernel = script.attention(model, plan)
        if plan.packing_attends_across:
            lines.append("packing: examples share blocks and attend across (--packing-attends-across)")
        elif kernel == knowledge.table("speed")["packing"]["kernel"]:
            lines.append(f"packing with {kernel} on the GPU: {knowledge.table('speed')['packing']['source']}")
        else:
            lines.append(f"packing with {kernel}'s block-diagonal mask ({model.family} has no FlexAttention in transformers)")
    elif plan.packing and plan.task == "sft" and model.conv_layers:
        lines.append("one example a row, padded: packed, the convolution layers would read across examples "
                     "(--packing-attends-across packs anyway)")
    if script.compiles(plan):
        lines.append(f"compiled decoder layers: {_lever('speed.compile')['why']}")
    else:
        lines.append(f"eager: {script.eager_reason(plan)}")
    ckpt = _lever("speed.no-grad-ckpt")["why"]
    lines.append(("gradient checkpointing on: the plan does not fit without it; " if plan.grad_ckpt
                  else "gradient checkpointing off: ") + ckpt)
    if plan.method in ("lora", "dora") and not script.casts_adapter_inputs(plan):
        lines.append(f"adapter input cast off: {_lever('speed.no-input-cast')['why']}")
    if plan.is_low_rank:
        d = _lever("speed.dropout-0")
        lines.append(f"lora_dropout {plan.dropout}: " + (d["why"] if plan.dropout == 0 else
                                                         f"regularisation chosen over speed ({d['why']})"))
    if plan.optim == "adamw":
        lines.append(f"fused AdamW: {_lever('speed.optimizer')['why']}")
    return lines
