"""A Plan: every setting of one fine-tuning run. The estimator, the recommender, the
renderer and the runner all read this one object; plan.toml is its serialisation."""

from __future__ import annotations

import math
import tomllib
from dataclasses import asdict, dataclass, fields, replace
from enum import StrEnum
from pathlib import Path

from planner.errors import PlanError


class Method(StrEnum):
    FULL = "full"
    LORA = "lora"
    QLORA = "qlora"
    DORA = "dora"
    PREFIX = "prefix"
    IA3 = "ia3"


class Task(StrEnum):
    SFT = "sft"
    DPO = "dpo"


class Precision(StrEnum):
    BF16 = "bf16"
    FP16 = "fp16"    # cards without bf16: fp16 autocast with dynamic loss scaling
    MIXED = "mixed"
    FP32 = "fp32"


class Optimizer(StrEnum):
    ADAMW = "adamw"
    ADAMW_8BIT = "adamw_8bit"
    PAGED_ADAMW_8BIT = "paged_adamw_8bit"


class Loss(StrEnum):
    STANDARD = "standard"
    CHUNKED = "chunked"
    FUSED = "fused"
    MODEL = "model"        # the model's own loss (labels= to its forward), as a plain transformers loop computes it


class Trainer(StrEnum):
    """Which training program the script is: ftplan's own loop, or TRL's SFTTrainer/DPOTrainer."""
    FTPLAN = "ftplan"
    TRL = "trl"


class Offload(StrEnum):
    NONE = "none"
    OPTIMIZER = "optimizer"
    ALL = "all"


class Engine(StrEnum):
    """What the plan asks for; Plan.launcher_engine is what runs the processes."""
    NONE = "none"
    DEEPSPEED = "deepspeed"
    FSDP = "fsdp"


class Shard(StrEnum):
    FULL = "full"
    HYBRID = "hybrid"


class DpoLoss(StrEnum):
    """DPO's loss, by TRL's names (trl DPOTrainer loss_type), each computed as TRL computes it."""
    SIGMOID = "sigmoid"            # Rafailov et al. 2023
    HINGE = "hinge"                # SLiC, Zhao et al. 2023
    IPO = "ipo"                    # Azar et al. 2023, log-ratios averaged per token
    SIGMOID_NORM = "sigmoid_norm"  # sigmoid on per-token averaged log-ratios
    NCA_PAIR = "nca_pair"          # Chen et al. 2024
    BCO_PAIR = "bco_pair"          # Jung et al. 2024, without the running reward mean
    SPPO_HARD = "sppo_hard"        # Wu et al. 2024, hard win probabilities
    APO_ZERO = "apo_zero"          # D'Oosterlinck et al. 2024, eq. 7
    APO_DOWN = "apo_down"          # eq. 8
    AOT = "aot"                    # Melnyk et al. 2024, sorted across the micro-batch
    AOT_UNPAIRED = "aot_unpaired"
    DISCOPOP = "discopop"          # Chris Lu et al. 2024


class ReportTo(StrEnum):
    NONE = "none"
    TENSORBOARD = "tensorboard"
    WANDB = "wandb"


class Scheduler(StrEnum):
    COSINE = "cosine"
    LINEAR = "linear"
    CONSTANT = "constant"


class Attention(StrEnum):
    SDPA = "sdpa"
    EAGER = "eager"
    FLASH_ATTENTION_2 = "flash_attention_2"
    FLEX = "flex_attention"    # torch's FlexAttention: packed examples get a block (document) mask


class DataFormat(StrEnum):
    AUTO = "auto"
    ALPACA = "alpaca"
    SHAREGPT = "sharegpt"
    MESSAGES = "messages"
    COMPLETION = "completion"
    PREFERENCE = "preference"


def default_loss(trainer: str) -> str:
    """The loss a plan gets when none is asked for: the whole logits tensor in our loop (the
    fastest where it fits), TRL's own chunked head under TRL."""
    return Loss.CHUNKED if trainer == Trainer.TRL else Loss.STANDARD


def values(vocabulary: type[StrEnum]) -> tuple[str, ...]:
    """A vocabulary's words, for argparse choices and messages."""
    return tuple(m.value for m in vocabulary)


METHODS = values(Method)
TASKS = values(Task)
PRECISIONS = values(Precision)
OPTIMIZERS = values(Optimizer)
LOSSES = values(Loss)
OFFLOADS = values(Offload)
DPO_LOSSES = values(DpoLoss)
REPORT_TO = values(ReportTo)
ENGINES = values(Engine)
SHARDS = values(Shard)
FORMATS = values(DataFormat)
SCHEDULERS = values(Scheduler)
ATTENTIONS = values(Attention)
TRAINERS = values(Trainer)
# PEFT methods that add low-rank matrices (LoRA's A and B) to linear layers
LOW_RANK = (Method.LORA, Method.QLORA, Method.DORA)

MAX_SEQ_LEN = 1_048_576
MAX_BATCH = 65_536


@dataclass(frozen=True)
class Plan:
    model: str
    method: str = "lora"
    task: str = "sft"
    # shape of a step
    batch: int = 1                 # micro-batch per GPU (DPO: pairs per GPU)
    seq_len: int = 2048
    grad_accum: int = 1
    # adapters
    rank: int = 16
    alpha: int = 32
    dropout: float = 0.0
    targets: str = "all-linear"
    virtual_tokens: int = 20
    # numerics and memory switches
    precision: str = "bf16"
    optim: str = "adamw"
    grad_ckpt: bool = False
    loss: str = "standard"
    attn: str = "sdpa"
    trust_remote_code: bool = False  # run the modelling code a model ships with (auto_map)
    kbit_prep: bool = False        # QLoRA: PEFT's prepare_model_for_kbit_training (fp32 norms, embeddings and head)
    trainer: str = "ftplan"        # ftplan (our loop) | trl (SFTTrainer / DPOTrainer)
    # speed switches (they do not change the result of training)
    compile: bool = True           # torch.compile each decoder layer (CUDA only)
    cast_adapter_inputs: bool = False  # PEFT's default: cast each adapted layer's input to the fp32 adapter dtype
    # hardware
    gpu: str = ""
    gpus: int = 1
    nodes: int = 1
    zero: int = 0
    offload: str = "none"
    engine: str = "none"
    shard: str = "full"            # FSDP: full (all GPUs) | hybrid (within a node, replicated across nodes)
    # training
    learning_rate: float = 2e-4
    scheduler: str = "cosine"
    warmup_ratio: float = 0.03
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    epochs: float = 1.0
    max_steps: int = 0             # 0: run the epochs
    dpo_beta: float = 0.1
    dpo_loss_type: str = "sigmoid"
    precompute_ref: bool = False   # DPO under TRL: the reference log-probs computed once, before training
    # data and run
    data: str = ""
    data_format: str = "auto"
    packing: bool = True
    packing_attends_across: bool = False  # the old packing: examples in a block attend to earlier ones
    eval_fraction: float = 0.05
    seed: int = 42
    output_dir: str = "output"
    run_name: str = "ftplan-run"
    logging_steps: int = 1
    save_steps: int = 100
    keep_checkpoints: int = 2      # the newest K checkpoints stay on disk; older ones are deleted
    eval_steps: int = 100
    report_to: str = "none"
    save_final: bool = True        # False: skip the final checkpoint and model save (benchmarks)

    def with_(self, **changes) -> Plan:
        return replace(self, **changes)

    @property
    def world_size(self) -> int:
        return self.gpus * self.nodes

    @property
    def launcher_engine(self) -> str:
        """What runs the processes: none (one GPU), ddp, deepspeed (any ZeRO stage) or fsdp."""
        if self.engine == "fsdp":
            return "fsdp"
        if self.engine == "deepspeed" or self.zero > 0:
            return "deepspeed"
        return "ddp" if self.world_size > 1 else "none"

    @property
    def distributed(self) -> bool:
        return self.launcher_engine != "none"

    @property
    def is_peft(self) -> bool:
        return self.method != Method.FULL

    @property
    def stores_fp32_weights(self) -> bool:
        """fp32 weights on the GPU: fp32 plans, and full fine-tuning under mixed or fp16
        precision (fp32 master weights; fp16 weights cannot take small updates)."""
        return self.precision == Precision.FP32 or (self.method == Method.FULL and self.precision in (Precision.MIXED, Precision.FP16))

    @property
    def is_low_rank(self) -> bool:
        """LoRA, QLoRA or DoRA: rank, alpha, dropout and target modules apply."""
        return self.method in LOW_RANK

    @property
    def lists_experts(self) -> bool:
        """--targets names the fused experts (PEFT's target_parameters: ModelSpec.target_parameters)."""
        return "experts" in (t.strip() for t in self.targets.split(","))

    @property
    def adapts_experts(self) -> bool:
        """LoRA on the fused experts: a low-rank method whose --targets names them."""
        return self.is_low_rank and self.lists_experts

    @property
    def uses_deepspeed(self) -> bool:
        return self.launcher_engine == "deepspeed"

    @property
    def shards_params(self) -> bool:
        """ZeRO-3 and FSDP keep only a shard of the parameters on each GPU."""
        return (self.uses_deepspeed and self.zero == 3) or self.engine == Engine.FSDP

    @property
    def shards_gradients(self) -> bool:
        return (self.uses_deepspeed and self.zero >= 2) or self.engine == Engine.FSDP

    @property
    def shards_optimizer(self) -> bool:
        return (self.uses_deepspeed and self.zero >= 1) or self.engine == Engine.FSDP

    @property
    def shard_count(self) -> int:
        """GPUs a sharded state is split over: all of them, or one node's with FSDP hybrid
        sharding (shard within a node, replicate across nodes; Zhao et al. 2023, PyTorch FSDP)."""
        if self.engine == Engine.FSDP and self.shard == Shard.HYBRID:
            return self.gpus
        return self.world_size

    @property
    def rows_per_micro_step(self) -> int:
        """Sequences in one forward on one GPU: DPO runs chosen and rejected together."""
        return self.batch * (2 if self.task == Task.DPO else 1)

    @property
    def effective_batch(self) -> int:
        return self.batch * self.grad_accum * self.world_size

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Plan:
        """A plan from plan.toml's [plan] table: unknown keys named, every value of its field's
        type (a whole number where one belongs, never a boolean for a number)."""
        if not isinstance(d, dict):
            raise PlanError("plan.toml's [plan] is not a table of settings; render the run again")
        known = {f.name: f.type for f in fields(cls)}
        unknown = sorted(set(d) - set(known))
        if unknown:
            raise PlanError(f"plan has unknown settings {', '.join(unknown)}; remove them or re-render with this ftplan")
        if "model" not in d:
            raise PlanError("plan has no model; set model = \"...\"")
        for name, value in d.items():
            _check_type(name, value, known[name])
        return cls(**d)

    @classmethod
    def load(cls, path: Path) -> Plan:
        try:
            with open(path, "rb") as f:
                data = tomllib.load(f)
        except FileNotFoundError:
            raise PlanError(f"{path} not found; render a run directory first (ftplan render -o DIR)") from None
        except IsADirectoryError:
            raise PlanError(f"{path} is a directory; give the plan.toml inside a run directory") from None
        except tomllib.TOMLDecodeError as e:
            raise PlanError(f"{path} is not valid TOML ({e}); fix it or render again") from None
        except (OSError, UnicodeDecodeError) as e:
            raise PlanError(f"{path} cannot be read ({getattr(e, 'strerror', None) or e}); give the plan.toml of a run directory") from None
        return cls.from_dict(data.get("plan", data))


def _check_type(name: str, value, kind: str) -> None:
    ok = {"str": isinstance(value, str),
          "bool": isinstance(value, bool),
          "int": isinstance(value, int) and not isinstance(value, bool),
          "float": isinstance(value, (int, float)) and not isinstance(value, bool)}.get(kind, True)
    if not ok:
        want = {"str": "a string", "bool": "true or false", "int": "a whole number", "float": "a number"}[kind]
        raise PlanError(f"plan setting {name} = {value!r} must be {want}; fix plan.toml or render again")


def _choice(name: str, value, choices) -> None:
    if value not in choices:
        raise PlanError(f"--{name.replace('_', '-')} {value!r} is not one of {', '.join(map(str, choices))}")


def _validate_trl(plan: Plan) -> None:
    """What ftplan's TRL scripts cover; each refusal says what to use instead."""
    if plan.method in ("prefix", "ia3"):
        raise PlanError(f"ftplan's TRL scripts train full, LoRA, QLoRA and DoRA; use --trainer ftplan for {plan.method}")
    if plan.launcher_engine in ("deepspeed", "fsdp"):
        raise PlanError("ftplan's TRL scripts run on one GPU or data parallel (DDP); use --trainer ftplan for ZeRO and FSDP")
    if plan.loss != "chunked":
        raise PlanError("TRL computes its loss through its own chunked log-probability head (it turns Liger's fused "
                        "cross-entropy off); use --loss chunked with --trainer trl")
    if plan.packing_attends_across:
        raise PlanError("TRL's packing keeps examples apart; drop --packing-attends-across with --trainer trl")


def validate(plan: Plan, model=None) -> Plan:
    """Check settings that cannot run; raise PlanError with the fix. Returns the plan."""
    _choice("method", plan.method, METHODS)
    _choice("task", plan.task, TASKS)
    _choice("precision", plan.precision, PRECISIONS)
    _choice("optim", plan.optim, OPTIMIZERS)
    _choice("loss", plan.loss, LOSSES)
    _choice("offload", plan.offload, OFFLOADS)
    _choice("zero", plan.zero, (0, 1, 2, 3))
    _choice("dpo_loss_type", plan.dpo_loss_type, DPO_LOSSES)
    _choice("report_to", plan.report_to, REPORT_TO)
    _choice("engine", plan.engine, ENGINES)
    _choice("shard", plan.shard, SHARDS)
    _choice("data_format", plan.data_format, FORMATS)
    for name, low, high in (("batch", 1, MAX_BATCH), ("seq_len", 8, MAX_SEQ_LEN), ("grad_accum", 1, 1_000_000),
                            ("gpus", 1, 1024), ("nodes", 1, 4096)):
        value = getattr(plan, name)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            flag = "--" + name.replace("_", "-")
            raise PlanError(f"{flag} must be a whole number from {low} to {high:,} (got {value})")
    _choice("trainer", plan.trainer, TRAINERS)
    if plan.trainer == "trl":
        _validate_trl(plan)
    if plan.method == "prefix":
        if plan.grad_ckpt:
            raise PlanError("prefix tuning cannot use gradient checkpointing in PEFT (the prefix cache breaks the recompute); drop --grad-ckpt")
    if plan.loss != "standard" and plan.method == "prefix":
        raise PlanError("prefix tuning injects its prefix through PEFT's forward, which the chunked and fused losses bypass; use --loss standard")
    if plan.loss == "fused" and plan.task == "dpo":
        raise PlanError("the fused (Liger) loss computes cross-entropy, not DPO's log-probabilities; use --loss chunked for DPO")
    if plan.method == "qlora" and plan.precision not in ("bf16", "fp16"):
        raise PlanError("QLoRA computes in 16 bits over 4-bit weights; set --precision bf16 (or fp16 on a card without bf16)")
    if plan.precision == "fp16" and (plan.uses_deepspeed or plan.engine == "fsdp"):
        raise PlanError("fp16 with loss scaling runs on one GPU or with DDP in ftplan's scripts; use --engine ddp, "
                        "or a card with bf16 for ZeRO and FSDP")
    if plan.gpu and plan.precision in ("bf16", "mixed"):
        from planner import hardware

        card = hardware.find(plan.gpu)
        if card is not None and not card.bf16:
            raise PlanError(f"{card.name} has no bf16; use --precision fp16 (fp16 autocast with loss scaling)")
    if plan.method != "full" and plan.precision == "mixed":
        raise PlanError("--precision mixed (fp32 master weights) applies to full fine-tuning; adapters already train in fp32")
    if plan.offload != "none" and plan.zero == 0 and plan.engine != "fsdp":
        raise PlanError("--offload needs ZeRO sharding; add --zero 2 or --zero 3 (or --engine fsdp)")
    if plan.offload == "all" and plan.zero != 3 and plan.engine != "fsdp":
        raise PlanError("--offload all (parameters too) needs --zero 3; use --offload optimizer with stage 1 or 2")
    if plan.engine == "fsdp" and plan.offload == "optimizer":
        raise PlanError("FSDP offloads parameters, gradients and optimizer states together; use --offload all with --engine fsdp")
    if plan.engine == "fsdp" and plan.zero:
        raise PlanError("--engine fsdp shards by itself; drop --zero (ZeRO stages are DeepSpeed's)")
    if plan.shard == "hybrid" and (plan.engine != "fsdp" or plan.nodes < 2):
        raise PlanError("--shard hybrid (shard within a node, replicate across nodes) needs --engine fsdp and --nodes 2 or more")
    if plan.method == "qlora" and plan.launcher_engine in ("deepspeed", "fsdp"):
        raise PlanError("QLoRA's 4-bit weights are not sharded by our scripts; run it data parallel: drop --zero/--engine (the adapters are small)")
    if plan.distributed and plan.loss != "standard" and plan.trainer == "ftplan":
        raise PlanError("the chunked and fused losses call the decoder directly, past the engine's wrapper; use --loss standard on several GPUs or with ZeRO/FSDP")
    if plan.task == "dpo" and plan.method == "full" and plan.shards_params:
        raise PlanError("DPO full fine-tuning keeps an unsharded reference model; with ZeRO-3/FSDP use a PEFT method (the reference is the adapter-free model) or --zero 2")
    _choice("scheduler", plan.scheduler, SCHEDULERS)
    _choice("attn", plan.attn, ATTENTIONS)
    if plan.loss == "model" and plan.task == "dpo":
        raise PlanError("DPO needs per-token log-probabilities, not the model's cross-entropy; use --loss standard or chunked")
    if plan.precompute_ref and (plan.task != "dpo" or plan.trainer != "trl"):
        raise PlanError("--precompute-ref-log-probs is TRL's DPO option (DPOConfig precompute_ref_log_probs); use it with "
                        "--task dpo --trainer trl, or drop it (ftplan's loop runs the reference pass each step)")
    if plan.kbit_prep and plan.method != "qlora":
        raise PlanError("--kbit-prep (prepare_model_for_kbit_training) applies to QLoRA's 4-bit base; drop it")
    for name, low, high, open_low in (("learning_rate", 0.0, 1.0, True), ("epochs", 0.0, 10_000.0, True),
                                      ("warmup_ratio", 0.0, 0.9, False), ("weight_decay", 0.0, 10.0, False),
                                      ("max_grad_norm", 0.0, 1e6, True), ("eval_fraction", 0.0, 0.49, False),
                                      ("dropout", 0.0, 0.99, False), ("dpo_beta", 0.0, 100.0, True)):
        value = getattr(plan, name)
        if not (math.isfinite(value) and (value > low if open_low else value >= low) and value <= high):
            lower = f"above {low:g}" if open_low else f"at least {low:g}"
            raise PlanError(f"--{name.replace('_', '-')} must be a finite number {lower} and at most {high:g} (got {value})")
    for name, low, high in (("max_steps", 0, 10**9), ("seed", 0, 2**32 - 1), ("save_steps", 1, 10**9), ("keep_checkpoints", 1, 1000),
                            ("logging_steps", 1, 10**9), ("eval_steps", 1, 10**9), ("rank", 1, 4096),
                            ("alpha", 1, 1_000_000), ("virtual_tokens", 1, 4096)):
        value = getattr(plan, name)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise PlanError(f"--{name.replace('_', '-')} must be a whole number from {low:,} to {high:,} (got {value})")
    for name in ("model", "targets", "output_dir", "run_name"):
        value = getattr(plan, name)
        if not isinstance(value, str) or not value.strip() or len(value) > 4096 or "\x00" in value:
            raise PlanError(f"{name} must be a non-empty string of at most 4,096 characters (got {str(value)[:40]!r})")
    if model is not None:
        _validate_against_model(plan, model)
    return plan


def _validate_against_model(plan: Plan, model) -> None:
    if plan.method == "qlora" and model.quantized_params() == 0:
        raise PlanError(f"bitsandbytes would quantize none of {model.name}'s layers (transformers converts layers whose type "
                        f"is exactly nn.Linear, and these subclass it), so QLoRA would be LoRA on a bf16 base; use --method lora")
    if plan.is_low_rank:
        modules = model.target_modules(plan.targets)
        # a gate to a single logit (Qwen2-MoE's shared_expert_gate) takes any rank in PEFT; the rest bound it
        widths = [min(model.module_shape(m)[:2]) for m in modules]
        widths += [min(model.expert_shapes()[p]) for p in model.target_parameters(plan.targets)]
        narrowest = min((w for w in widths if w > 1), default=plan.rank)
        if plan.rank > narrowest:
            raise PlanError(
                f"--rank {plan.rank} is larger than the narrowest adapted layer of {model.name} ({narrowest}); "
                f"use a rank of at most {narrowest}"
            )
        if plan.adapts_experts:
            _validate_expert_lora(plan, model)
    elif plan.method == "ia3":
        if plan.lists_experts:
            raise PlanError("IA3 scales the outputs of nn.Linear layers, and the fused experts are not layers; "
                            "use --method lora to adapt them, or --targets without experts")
        model.target_modules(plan.targets)
    if plan.method == "prefix" and model.latent_attention:
        raise PlanError(f"{model.name} caches compressed latents, not per-head keys and values, so prefix tuning's "
                        f"virtual keys and values have no place in it; use --method lora")


def _validate_expert_lora(plan: Plan, model) -> None:
    """What PEFT's LoRA on parameters (ParamWrapper, tuners/lora/layer.py) cannot do, and what
    ftplan has not measured with it."""
    if plan.method == Method.DORA or plan.dropout:
        raise PlanError(f"PEFT's LoRA on the fused experts takes no {'DoRA' if plan.method == Method.DORA else 'dropout'} "
                        f"(ParamWrapper refuses it); use {'--method lora' if plan.method == Method.DORA else '--dropout 0'}, "
                        f"or --targets without experts")
    if plan.shards_params:
        raise PlanError("LoRA on the fused experts folds each expert's update into its whole weight every forward, "
                        "which ZeRO-3 and FSDP have sharded; use --zero 2 or fewer, or --targets without experts")
