"""Render a plan into a run directory from the Jinja templates in templates/.

User strings reach the files only through three filters: `py` (a Python literal via
repr), `sh` (shlex.quote) and `comment` (escaped to one line), so no model id, path or
field can break or inject code into a rendered file."""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from pathlib import Path

from planner import disk, evidence, knowledge, memory, script, speed
from planner.errors import RenderError
from planner.models import ModelSpec
from planner.plan import Plan, validate

SUPPORTED = {"transformers": ("5.0", "6.0"), "peft": ("0.17", "1.0"), "torch": ("2.4", "3.0"),
             "bitsandbytes": ("0.45", "1.0")}
FILES = ("train.py", "launch.sh", "merge.py", "slurm.sbatch")
CHAT_FORMATS = ("sharegpt", "messages")
# the row formats each task's script reads (the data format is known before rendering)
CONCRETE_FORMATS = {"sft": ("alpaca", "sharegpt", "messages", "completion"), "dpo": ("preference",)}


def py_literal(value) -> str:
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(py_literal(v) for v in value) + "]"
    if isinstance(value, (str, bool, int, float)) or value is None:
        return repr(value)
    raise RenderError(f"cannot render a {type(value).__name__} as a Python literal")


def one_line(value) -> str:
    """Text safe inside a # comment or a TOML comment: control characters escaped."""
    return repr(str(value))[1:-1]


def toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise RenderError(f"cannot write a {type(value).__name__} to plan.toml")


def plan_toml(plan: Plan, extra: dict) -> str:
    lines = ["# Everything needed to render this run again: ftplan render --plan plan.toml -o DIR", "", "[plan]"]
    lines += [f"{k} = {toml_value(v)}" for k, v in plan.as_dict().items()]
    lines += ["", "[render]"]
    lines += [f"{k} = {toml_value(v)}" for k, v in extra.items()]
    return "\n".join(lines) + "\n"


def environment():
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(knowledge.templates_dir())),
                             keep_trailing_newline=True, undefined=jinja2.StrictUndefined, autoescape=False,
                             trim_blocks=True, lstrip_blocks=True)  # a block tag's line leaves nothing behind
    env.filters["py"] = py_literal
    env.filters["sh"] = lambda v: shlex.quote(str(v))
    env.filters["comment"] = one_line
    return env


@dataclass(frozen=True)
class RenderResult:
    run_dir: Path
    files: tuple[Path, ...]
    next_steps: str
    warnings: tuple[str, ...] = ()


def check_versions() -> list[str]:
    """Installed library versions outside the range the templates were written for."""
    from importlib import metadata

    problems = []
    for name, (low, high) in SUPPORTED.items():
        try:
            version = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
        key = tuple(int(p) for p in version.split("+")[0].split(".")[:2] if p.isdigit())
        if not (tuple(map(int, low.split("."))) <= key < tuple(map(int, high.split(".")))):
            problems.append(f"{name} {version} is outside the supported {low} to <{high}")
    return problems


def next_steps(plan: Plan, run_dir: Path, model_path: str) -> str:
    final = run_dir / plan.output_dir / "final"
    merged = run_dir / plan.output_dir / "merged"
    q = shlex.quote
    lines = ["After training:"]
    if plan.is_low_rank or plan.method == "ia3":  # adapters that merge into the weights
        lines += [f"  merge the adapter:      python3 {q(str(run_dir / 'merge.py'))}",
                  f"  serve merged (vLLM):    vllm serve {q(str(merged))} --dtype bfloat16",
                  f"  serve base + adapter:   vllm serve {q(model_path)} --enable-lora --lora-modules ft={q(str(final))}"]
        if plan.method == "ia3":
            lines.pop()  # vLLM serves LoRA adapters only
        gguf_from = merged
    elif plan.method == "prefix":
        lines += [f"  load it:                PeftModel.from_pretrained(base, {str(final)!r}) (prefix tuning does not merge)"]
        gguf_from = None
    else:
        lines += [f"  serve it (vLLM):        vllm serve {q(str(final))} --dtype bfloat16"]
        gguf_from = final
    if gguf_from is not None:
        lines += [f"  convert to GGUF:        python llama.cpp/convert_hf_to_gguf.py {q(str(gguf_from))} "
                  f"--outfile model.gguf --outtype q8_0   (then llama-quantize model.gguf model-q4_k_m.gguf Q4_K_M)"]
    return "\n".join(lines)


def speed_lines(model: ModelSpec, plan: Plan, estimate: memory.Estimate | None) -> list[str]:
    lines = speed.explain(model, plan)
    sp = speed.estimate(model, plan, estimate.gpu) if estimate is not None and estimate.gpu is not None else None
    if sp is not None:
        lines.append(f"predicted on {estimate.gpu.name}: {sp.tokens_per_s:,.0f} tokens/s, {sp.step_s:.2f} s per "
                     f"optimizer step, MFU {sp.mfu:.0%} (ftplan estimate for the breakdown)")
    return lines


def deepspeed_config(plan: Plan) -> dict:
    """ds_config.json for a ZeRO stage (DeepSpeed config reference, docs/_pages/config-json.md).
    The script brings its own AdamW, so zero_force_ds_cpu_optimizer is off; under offload its
    states live in host RAM. Bucket sizes: knowledge/distributed.toml [deepspeed]."""
    ds = knowledge.table("distributed")["deepspeed"]
    buckets = ds["bucket_elements"]
    zero: dict = {"stage": plan.zero, "overlap_comm": True, "contiguous_gradients": True,
                  "reduce_bucket_size": buckets}
    if plan.zero in (1, 2):
        zero["allgather_bucket_size"] = buckets
    if plan.zero == 3:
        zero.update({"stage3_prefetch_bucket_size": buckets, "stage3_param_persistence_threshold": ds["param_persistence_threshold"],
                     "stage3_gather_16bit_weights_on_model_save": True})
    if plan.offload in ("optimizer", "all"):
        zero["offload_optimizer"] = {"device": "cpu", "pin_memory": True}
    if plan.offload == "all":
        zero["offload_param"] = {"device": "cpu", "pin_memory": True}
    return {
        "train_micro_batch_size_per_gpu": plan.batch,
        "gradient_accumulation_steps": plan.grad_accum,
        "train_batch_size": plan.batch * plan.grad_accum * plan.world_size,
        "gradient_clipping": plan.max_grad_norm,
        "bf16": {"enabled": plan.precision != "fp32"},
        "zero_optimization": zero,
        "zero_force_ds_cpu_optimizer": False,
        "steps_per_print": 1_000_000_000,
        "wall_clock_breakdown": False,
    }


def accelerate_config(plan: Plan) -> dict:
    """accelerate_config.yaml: the same job for `accelerate launch` (accelerate's ClusterConfig)."""
    engine = plan.launcher_engine
    cfg: dict = {
        "compute_environment": "LOCAL_MACHINE",
        "distributed_type": {"ddp": "MULTI_GPU", "deepspeed": "DEEPSPEED", "fsdp": "FSDP"}[engine],
        "num_machines": plan.nodes, "num_processes": plan.world_size, "machine_rank": 0,
        "main_process_ip": "127.0.0.1" if plan.nodes == 1 else None, "main_process_port": 29500,
        "mixed_precision": "no",  # the script runs bf16 itself (autocast / bf16 weights)
        "rdzv_backend": "static" if plan.nodes == 1 else "c10d", "same_network": True,
        "use_cpu": False, "gpu_ids": "all",
    }
    if engine == "deepspeed":
        cfg["deepspeed_config"] = {"deepspeed_config_file": "ds_config.json", "zero3_init_flag": plan.zero == 3}
    if engine == "fsdp":
        cfg["fsdp_config"] = {"fsdp_version": 2, "fsdp_reshard_after_forward": True,
                              "fsdp_offload_params": plan.offload != "none",
                              "fsdp_auto_wrap_policy": "TRANSFORMER_BASED_WRAP",
                              "fsdp_state_dict_type": "SHARDED_STATE_DICT"}
    return cfg


def yaml_text(d: dict, indent: int = 0) -> str:
    """YAML for a dict of scalars and dicts (what accelerate's config files hold)."""
    out = []
    for k, v in d.items():
        if isinstance(v, dict):
            out.append(" " * indent + f"{k}:")
            out.append(yaml_text(v, indent + 2).rstrip("\n"))
        elif v is None:
            out.append(" " * indent + f"{k}: null")
        else:
            out.append(" " * indent + f"{k}: {json.dumps(v)}")
    return "\n".join(out) + "\n"


def slurm_time_limit(seconds: float | None) -> str:
    """sbatch --time: half as long again as the estimate plus half an hour; a day when unknown."""
    if seconds is None:
        return "1-00:00:00"
    total = int(seconds * 1.5 + 1800)
    days, rest = divmod(total, 86400)
    return f"{days}-{rest // 3600:02d}:{rest % 3600 // 60:02d}:00"


def trl_context(plan: Plan) -> dict:
    """The names TRL gives the plan's choices, and the header lines on what TRL does differently
    (knowledge/trl.toml, each with the measurement behind it)."""
    trl = knowledge.table("trl")
    return dict(
        trainer_class="SFTTrainer" if plan.task == "sft" else "DPOTrainer",
        config_class="SFTConfig" if plan.task == "sft" else "DPOConfig",
        trl_optim=trl["optim"][plan.optim], trl_scheduler=trl["scheduler"][plan.scheduler],
        trl_lines=[f"{row['what']}: {row['cost']} ({row['source']})" for row in trl["difference"]
                   if plan.task in row.get("tasks", ("sft", "dpo")) and plan.method in row.get("methods", (plan.method,))],
    )


def _total_s(model: ModelSpec, plan: Plan, estimate: memory.Estimate | None, dataset_tokens: int | None) -> float | None:
    if estimate is None or estimate.gpu is None or not dataset_tokens:
        return None
    sp = speed.estimate(model, plan, estimate.gpu, dataset_tokens)
    return sp.total_s if sp else None


def render_files(plan: Plan, model: ModelSpec, run_dir: Path, model_path: str, data_path: str, data_format: str,
                 command: str, estimate: memory.Estimate | None = None, recommendations=(),
                 dataset_tokens: int | None = None) -> dict[str, str]:
    """Every file of the run directory, by name, as text (nothing is written)."""
    data_abs = str(Path(data_path).resolve())
    # the script runs from its own directory: a local model path must not depend on where render ran
    local = Path(model_path).expanduser()
    if local.exists():
        model_path = str(local.resolve())
    plan = plan.with_(data=data_abs, data_format=data_format)
    validate(plan, model)
    if data_format not in CONCRETE_FORMATS[plan.task]:
        raise RenderError(f"a {plan.task} script reads {' or '.join(CONCRETE_FORMATS[plan.task])} rows, not {data_format!r}; "
                          f"give --data-format")
    decided = script.decide(model, plan)
    logit_scale, logit_softcap = script.logit_transform(model, plan)
    scaler_arg = ", scaler" if plan.precision == "fp16" else ""  # fp16 scripts save and load the loss scaler
    est_lines, est_total, est_gpu = [], "not estimated (no GPU given)", "-"
    if estimate is not None:
        est_total = f"{estimate.total_bytes / 2**30:.2f} GiB"
        if estimate.gpu is not None:
            est_gpu = estimate.gpu.name
            est_total += f" of {estimate.gpu.memory_bytes / 2**30:.2f} GiB: {'fits' if estimate.fits else 'DOES NOT FIT'}"
        est_lines = [f"{t.name:<22} {t.bytes / 2**30:7.2f} GiB  {t.detail}" for t in estimate.terms if t.at_peak]
        est_lines.append(f"peak {estimate.peak_phase}")
    rule_lines = [f"{r.setting} = {r.value}  [{r.rule_id}] {r.why} ({r.source})" for r in recommendations] or \
        ["(settings given on the command line; run ftplan recommend for rule-backed values)"]
    ctx = dict(
        plan=plan, model_path=model_path, data_path=data_abs, data_format=data_format,
        run_dir=str(run_dir), command=command, estimate_lines=est_lines, estimate_total=est_total,
        estimate_gpu=est_gpu, rule_lines=rule_lines, evidence_line=evidence.of(model, plan).line(), target_modules=list(decided.adapted_modules),
        target_parameters=list(decided.adapted_parameters),
        ia3_feedforward=list(decided.ia3_feedforward), balances_routers=decided.balances_routers,
        loss_chunk=knowledge.table("memory")["loss"]["chunk_tokens"],
        logit_scale=logit_scale, logit_softcap=logit_softcap,
        discopop_tau=knowledge.table("trl")["discopop_tau"]["value"],
        packs=script.packs(model, plan), checkpoint_bytes=disk.checkpoint_bytes(model, plan), final_bytes=disk.final_model_bytes(model, plan), signal_grace_s=knowledge.table("distributed")["slurm"]["signal_grace_s"],
        max_requeues=knowledge.table("distributed")["slurm"]["max_requeues"],
        half="float16" if plan.precision == "fp16" else "bfloat16", scaler_arg=scaler_arg,
        checkpoint_args=(", accelerator" if plan.distributed else "") + scaler_arg,
        checkpoint_glob=script.checkpoint_glob(plan),
        sft=plan.task == "sft", dpo=plan.task == "dpo", chat=data_format in CHAT_FORMATS, trl=plan.trainer == "trl",
        # rows not rendered by a chat template start as the tokenizer starts a prompt (BOS for most)
        needs_bos=plan.task == "dpo" or data_format not in CHAT_FORMATS,
        attention=decided.attention, cpu_attention=script.cpu_attention(model, plan), compiled=decided.compiled, cast_inputs=decided.cast_adapter_inputs,
        speed_lines=speed_lines(model, plan, estimate),
        distributed=plan.distributed, engine=decided.engine, run_dir_abs=str(Path(run_dir).resolve()),
        job_name="".join(c if c.isalnum() or c in "-_." else "-" for c in plan.run_name)[:64] or "ftplan",
        cpus_per_task=max(4, 8 * plan.gpus),
        time_limit=slurm_time_limit(_total_s(model, plan, estimate, dataset_tokens)),
        title=f"{plan.task.upper()} {plan.method} fine-tune of {model.name}",
    )
    if plan.trainer == "trl":
        ctx.update(trl_context(plan))
    env = environment()
    templates = {name: f"{name}.j2" for name in FILES}
    if plan.trainer == "trl":
        templates["train.py"] = "trl/train.py.j2"
    files = {name: env.get_template(template).render(**ctx) for name, template in templates.items()}
    if plan.uses_deepspeed:
        files["ds_config.json"] = json.dumps(deepspeed_config(plan), indent=2) + "\n"
    if plan.distributed:
        files["accelerate_config.yaml"] = yaml_text(accelerate_config(plan))
    files["run.lock"] = ""  # `ftplan run` holds a lock on it for the run's life: one runner per directory
    files["plan.toml"] = plan_toml(plan, {"model_path": model_path, "data_path": data_abs,
                                          "data_format": data_format, "command": command})
    files["NEXT_STEPS.txt"] = next_steps(plan, Path(run_dir).resolve(), model_path) + "\n"
    return files


def _check_name(run_dir: Path) -> None:
    """A run directory's path must be UTF-8 text without control characters: the scripts,
    the launch commands and SLURM all carry it."""
    text = str(run_dir.absolute())
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise RenderError(f"the run directory's path {text!r} is not UTF-8 text; choose another -o") from None
    if any(ord(c) < 32 or ord(c) == 127 for c in text):
        raise RenderError(f"the run directory's path {text!r} holds a control character; choose another -o")


def _write_all(run_dir: Path, files: dict[str, str]) -> None:
    """Write every file or none: into a new folder beside the run directory, then moved into
    place (the whole folder when the run directory is new, file by file when it exists)."""
    import os
    import shutil
    import tempfile

    parent = run_dir.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".ftplan-render-", dir=parent))
    except OSError as e:
        raise RenderError(f"cannot write in {parent} ({e.strerror or e}); choose another -o") from None
    try:
        for name, text in files.items():
            path = staging / name
            path.write_text(text, encoding="utf-8")
            if name.endswith((".sh", ".sbatch")):
                path.chmod(0o755)
        if run_dir.exists():
            for name in files:
                os.replace(staging / name, run_dir / name)
            staging.rmdir()
        else:
            os.replace(staging, run_dir)
    except (OSError, ValueError) as e:
        shutil.rmtree(staging, ignore_errors=True)
        raise RenderError(f"cannot write {run_dir} ({getattr(e, 'strerror', None) or e}); choose another -o") from None


def render(plan: Plan, model: ModelSpec, run_dir: Path, model_path: str, data_path: str, data_format: str,
           command: str, estimate: memory.Estimate | None = None, recommendations=(), force: bool = False,
           dataset_tokens: int | None = None) -> RenderResult:
    run_dir = Path(run_dir)
    _check_name(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise RenderError(f"{run_dir} is a file; give -o a directory")
    if run_dir.exists() and any(run_dir.iterdir()) and not force:
        raise RenderError(f"{run_dir} exists and is not empty; choose another -o or pass --force to overwrite its scripts")
    from runner import status

    if status.read(run_dir).get("state") == "running":
        raise RenderError(f"{run_dir} has a run in progress; wait for it or render elsewhere")
    files = render_files(plan, model, run_dir, model_path, data_path, data_format, command, estimate,
                         recommendations, dataset_tokens)
    _write_all(run_dir, files)
    written = tuple(run_dir / name for name in files)
    return RenderResult(run_dir, written, files["NEXT_STEPS.txt"].rstrip("\n"))
