"""What the rendered script does with a plan: compiled or eager, which attention kernel,
whether PEFT casts each adapter's input, which modules are adapted and how wide they are,
how many trainable parameters there are. Memory, speed and render all read these decisions
from here, so the estimate describes the program the template writes."""

from __future__ import annotations

from dataclasses import dataclass

from planner import knowledge
from planner.errors import ModelError
from planner.plan import Method, Plan
from planner.spec import ModelSpec


def compiles(plan: Plan) -> bool:
    """Whether the rendered script compiles its decoder layers (eager_reason)."""
    return not eager_reason(plan)


def eager_reason(plan: Plan) -> str:
    """Why the rendered script runs its decoder layers eager, or "" when it compiles them: the
    plan asks for compilation and the method has been measured compiled (knowledge/speed.toml
    [compile]); DeepSpeed and FSDP wrap the layers themselves and run them eager; and LoRA on
    the fused experts under checkpointing failed compiled on the H200 (the recomputed layer
    saved other tensors than its forward had: torch's CheckpointError, Qwen3-MoE-shaped,
    bench/results/experts-h200.jsonl)."""
    if not plan.compile:
        return "compilation turned off (--no-compile)"
    if plan.method not in knowledge.table("speed")["compile"]["methods"]:
        return f"{plan.method} has not been measured compiled yet (knowledge/speed.toml [compile])"
    if plan.launcher_engine not in ("none", "ddp"):
        return f"{plan.launcher_engine} wraps the decoder layers itself"
    if plan.adapts_experts and plan.grad_ckpt:
        return ("LoRA on the fused experts under checkpointing: compiled, the recomputed layer saved other tensors "
                "than its forward (bench/results/experts-h200.jsonl)")
    return ""


def attention(model: ModelSpec, plan: Plan) -> str:
    """The attention kernel the script runs on the GPU. Packed SFT runs FlexAttention where the
    architecture has it (knowledge/speed.toml [packing]: faster and smaller than sdpa's dense
    block-diagonal mask). Gemma 2's logit soft-capping has no sdpa path in transformers 5
    (Gemma2 raises on sdpa), so its scripts run eager attention, as do architectures whose
    own code does not support sdpa."""
    kernel = cpu_attention(model, plan)
    if kernel == "sdpa" and packs(model, plan) and not plan.packing_attends_across and _has_flex(model):
        return knowledge.table("speed")["packing"]["kernel"]
    return kernel


def cpu_attention(model: ModelSpec, plan: Plan) -> str:
    """The kernel where FlexAttention cannot train (the CPU has no FlexAttention backward)."""
    if plan.attn == "sdpa" and model.family == "gemma" and not model.qk_norm:
        return "eager"
    if plan.attn == "sdpa" and not model.sdpa:  # the model's class does not declare sdpa (planner/inventory.py)
        return "eager"
    return plan.attn


def _has_flex(model: ModelSpec) -> bool:
    """Declared by the model's own code (planner/inventory.py) and not ruled out by its family's table."""
    return model.flex and model.modules_table().get("flex", True)


def packs(model: ModelSpec, plan: Plan) -> bool:
    """Whether SFT examples share blocks. Not for prefix tuning: PEFT hands its prefix to the
    model as a cache, and transformers isolates packed examples only without one
    (masking_utils: packed sequences are read from position ids when there is no cache), so
    prefix-tuning scripts pad each example instead. Nor for a hybrid with convolution layers,
    unless the plan lets examples attend across: transformers runs the short convolution over
    the whole row (modeling_lfm2.py causal_conv1d_fn, no sequence boundaries), so each
    example's first tokens would read the last tokens of the one before."""
    isolating = not plan.packing_attends_across
    return plan.packing and plan.task == "sft" and plan.method != Method.PREFIX and not (model.conv_layers and isolating)


def loss_path(plan: Plan) -> str:
    """How the script turns the last hidden states into the loss. Ours: standard (the whole
    logits tensor; the model's own loss through labels= computes the same buffers:
    transformers loss_utils.ForCausalLMLoss), chunked or fused (Liger). TRL 1.x: its fused
    LM head (trl trainer/utils.py add_fused_lm_head, kernels/chunked_logprob.py), which
    projects tiles of the target positions only (it turns Liger's fused cross-entropy off)."""
    if plan.trainer == "trl":
        return "trl"
    return "standard" if plan.loss == "model" else plan.loss


# Where each program writes its checkpoints, under the run's checkpoints/: ftplan's loop, TRL's Trainer
CHECKPOINT_GLOBS = {"ftplan": "step-*", "trl": "checkpoint-*"}


def checkpoint_glob(plan: Plan) -> str:
    return CHECKPOINT_GLOBS[plan.trainer]


def casts_adapter_inputs(plan: Plan) -> bool:
    """Whether the script leaves PEFT's input cast on: when the plan asks, and under ZeRO-3,
    whose own linear function (LinearFunctionForZeroStage3) is not autocast-aware and needs
    the input in the fp32 adapter dtype (measured on the H100: bf16 != float without it)."""
    return plan.cast_adapter_inputs or (plan.uses_deepspeed and plan.zero == 3)


def copies_adapter_inputs(plan: Plan) -> bool:
    """Whether each LoRA layer makes its own copy of its input: PEFT casts the bf16 input to the
    fp32 adapter dtype (tuners/lora/layer.py, _cast_input_dtype) unless the script turns the
    cast off (ours do: autocast casts it straight back), and never on a 4-bit base under
    autocast (tuners/lora/bnb.py). Compiled layers fuse the cast pair away (8B LoRA b4 on the
    H100: +2.0 GiB with the cast rather than the +8.2 GiB of separate copies)."""
    return plan.method in (Method.LORA, Method.DORA) and casts_adapter_inputs(plan) and not compiles(plan)


def ia3_modules(model: ModelSpec, plan: Plan) -> list[str]:
    """IA3's modules: the family's key, value and feed-forward layers (PEFT's IA3 defaults),
    or the modules the plan names."""
    if plan.targets in ("all-linear", "attention"):
        table = model.modules_table()
        if "ia3" not in table:
            raise ModelError(f"{model.name}: ftplan has no IA3 module list for the {model.family!r} architecture; "
                             f"name the modules with --targets (for example {','.join(table['attention'][-2:])})")
        return [m for m in table["ia3"] if m in model.module_names()]  # a MoE block's fused experts are not layers
    return model.target_modules(plan.targets)


def ia3_feedforward(model: ModelSpec, plan: Plan) -> list[str]:
    """IA3 modules that scale their input (feed-forward layers) rather than their output."""
    modules = ia3_modules(model, plan)
    return [m for m in model.modules_table().get("ia3_feedforward", ()) if m in modules]


def adapted_modules(model: ModelSpec, plan: Plan) -> list[str]:
    """The modules of one decoder block that carry an adapter (none for full and prefix)."""
    if plan.is_low_rank:
        return model.target_modules(plan.targets)
    return ia3_modules(model, plan) if plan.method == Method.IA3 else []


def adapted_parameters(model: ModelSpec, plan: Plan) -> list[str]:
    """The fused expert weights that carry LoRA (PEFT's target_parameters), where --targets lists experts."""
    return model.target_parameters(plan.targets) if plan.adapts_experts else []


def adapted_widths(model: ModelSpec, plan: Plan) -> tuple[int, int, int]:
    """(sum of input widths, sum of output widths, largest in x out) of the low-rank adapted
    layers in one block."""
    if not plan.is_low_rank:
        return 0, 0, 0
    ins = outs = largest = 0
    for m in adapted_modules(model, plan):
        fan_in, fan_out, copies = model.module_shape(m)
        ins += fan_in * copies
        outs += fan_out * copies
        largest = max(largest, fan_in * fan_out)
    return ins, outs, largest


def trainable_params(model: ModelSpec, plan: Plan) -> int:
    """Trainable parameters of the plan.

    Full: every parameter. LoRA and DoRA: ModelSpec.lora_params; prefix tuning
    learns num_virtual_tokens key and value vectors per layer (Li & Liang 2021; PEFT
    PrefixEncoder without projection); IA3 learns one vector per adapted layer: its output
    width, or its input width for feed-forward layers (PEFT IA3Layer)."""
    if plan.method == Method.FULL:
        return model.total_params()
    if plan.method == Method.PREFIX:
        return plan.virtual_tokens * model.num_layers * 2 * model.kv_width
    if plan.method == Method.IA3:
        feedforward = set(ia3_feedforward(model, plan))
        modules = adapted_modules(model, plan)

        def per_layer(group: ModelSpec) -> int:
            present = group.module_names()
            total = 0
            for m in (m for m in modules if m in present):
                fan_in, fan_out, copies = group.module_shape(m)
                total += (fan_in if m in feedforward else fan_out) * copies
            return total
        return model.over_layers(per_layer)
    return model.lora_params(adapted_modules(model, plan), plan.rank, dora=plan.method == Method.DORA) + \
        model.expert_lora_params(adapted_parameters(model, plan), plan.rank)


def trainable_dtype_bytes(plan: Plan) -> int:
    """Trained weights, their gradients and AdamW states: bf16 for a bf16 full fine-tune, fp32
    otherwise (mixed precision's master weights; PEFT's fp32 adapters), except TRL's QLoRA."""
    dt = knowledge.table("memory")["dtype_bytes"]
    if plan.trainer == "trl" and plan.method == Method.QLORA:  # TRL casts QLoRA's adapters to bf16 (sft_trainer.py, dpo_trainer.py)
        return dt["bf16"]
    return dt["bf16"] if plan.method == Method.FULL and plan.precision == "bf16" else dt["fp32"]


def tokens_per_micro_step(plan: Plan) -> int:
    """Token positions in one forward on one GPU: prefix tuning prepends its virtual tokens."""
    return plan.rows_per_micro_step * (plan.seq_len + (plan.virtual_tokens if plan.method == Method.PREFIX else 0))


@dataclass(frozen=True)
class Script:
    """Every decision above for one plan, as the renderer and the JSON output show them."""
    compiled: bool
    attention: str
    cast_adapter_inputs: bool
    adapted_modules: tuple[str, ...]
    adapted_parameters: tuple[str, ...]
    ia3_feedforward: tuple[str, ...]
    engine: str
    shard_count: int
    rows_per_micro_step: int
    trainable_params: int
    balances_routers: bool = False

    def as_dict(self) -> dict:
        return {**self.__dict__, "adapted_modules": list(self.adapted_modules), "adapted_parameters": list(self.adapted_parameters),
                "ia3_feedforward": list(self.ia3_feedforward)}


def logit_transform(model: ModelSpec, plan: Plan) -> tuple[float, float]:
    """(scale, soft-cap) the script's loss applies to the logits itself: ftplan's chunked and
    fused losses multiply the head's weight without the model's forward, so they apply what
    that forward does (ModelSpec.logit_scale, logit_softcap); every other path reads the
    model's own logits, and TRL's head applies the transform itself. (1.0, 0.0): nothing."""
    if plan.trainer == "ftplan" and plan.loss in ("chunked", "fused"):
        return model.logit_scale, model.logit_softcap
    return 1.0, 0.0


def balances_routers(model: ModelSpec, plan: Plan) -> bool:
    """Whether ftplan's loop adds the routers' load-balancing loss: when a mixture of experts'
    routers train (full fine-tuning). The model's forward adds it to its own loss only when asked
    for its router logits (transformers' MoE models: output_router_logits, then
    router_aux_loss_coef x load_balancing_loss_func, the Switch Transformer's loss; Fedus et al.
    2022, eq. 4), and TRL's trainers ask; ftplan's chunked and fused losses, which skip the
    model's loss, add it themselves. A model whose code has no such loss (DeepSeek's routers)
    adds nothing."""
    return model.is_moe and plan.method == Method.FULL and plan.trainer == "ftplan"


def decide(model: ModelSpec, plan: Plan) -> Script:
    return Script(
        compiled=compiles(plan), attention=attention(model, plan), cast_adapter_inputs=casts_adapter_inputs(plan),
        adapted_modules=tuple(adapted_modules(model, plan)), adapted_parameters=tuple(adapted_parameters(model, plan)),
        ia3_feedforward=tuple(ia3_feedforward(model, plan)) if plan.method == Method.IA3 else (),
        engine=plan.launcher_engine, shard_count=plan.shard_count, rows_per_micro_step=plan.rows_per_micro_step,
        trainable_params=trainable_params(model, plan), balances_routers=balances_routers(model, plan),
    )
