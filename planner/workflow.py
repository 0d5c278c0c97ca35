"""What ftplan does for a user, as plain functions that return data: the CLI commands and the
wizard's screens both call these and only display what comes back. No Rich or Textual here."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from planner import disk, hardware, memory, recommend, render, search, speed
from planner.errors import HardwareError, PlanError
from planner.hardware import GpuSpec
from planner.models import ModelSpec
from planner.plan import Plan


# ====================================================================== hardware
@dataclass(frozen=True)
class Hardware:
    gpu: GpuSpec | None
    gpus: int                      # per node
    note: str = ""                 # how it was found, or why no GPU was


def find_hardware(gpu: str | None, gpus: int | None) -> Hardware:
    """--gpu wins; else the GPUs NVML detects; else no GPU (the fit is then unknown)."""
    if gpus is not None and gpus < 1:
        raise HardwareError(f"--gpus must be at least 1 (got {gpus}); plan for CPU-only hosts with --gpu NAME --gpus 1")
    if gpu:
        return Hardware(hardware.resolve(gpu), gpus or 1)
    det = hardware.detect()
    if det.gpus:
        return Hardware(hardware.spec_for_detected(det.gpus[0], len(det.gpus)), gpus or len(det.gpus),
                        f"detected {len(det.gpus)} x {det.gpus[0].name}")
    return Hardware(None, gpus or 1, det.problem)


# ====================================================================== dataset tokens
@dataclass(frozen=True)
class DatasetTokens:
    """Training tokens per epoch, and what the figure rests on (shown beside time and cost)."""
    tokens: int | None
    basis: str

    def as_dict(self) -> dict:
        return {"tokens": self.tokens, "basis": self.basis}


def dataset_tokens(seq_len: int, packing: bool = True, stats=None, examples: int | None = None,
                   given: int | None = None) -> DatasetTokens:
    """The one count of a dataset's tokens. Given: as given. With the data file: measured, as
    `ftplan data` counts them (packed rows fill whole sequences, so the tokens themselves;
    unpacked, each row takes a sequence of its own: rows x seq_len). With only a number of
    examples: assumed, each filling the sequence (an upper bound)."""
    if given is not None:
        return DatasetTokens(given, "given (--dataset-tokens)")
    if stats is not None:
        if packing:
            return DatasetTokens(max(1, stats.tokens), f"measured: {stats.tokens:,} tokens in {stats.rows:,} rows ({stats.tokenizer})")
        return DatasetTokens(stats.rows * seq_len, f"measured: {stats.rows:,} rows, unpacked, one {seq_len:,}-token sequence each")
    if examples:
        return DatasetTokens(examples * seq_len, f"assumed: {examples:,} examples each filling {seq_len:,} tokens "
                                                 f"(an upper bound; give --data or --dataset-tokens)")
    return DatasetTokens(None, "unknown: give --data, --examples or --dataset-tokens for total time and cost")


# ====================================================================== estimate
@dataclass(frozen=True)
class Report:
    """An estimate as every command and screen shows it: memory, speed, and when the plan does
    not fit, the changes that do (planner/search.py)."""
    estimate: memory.Estimate
    speed: speed.SpeedEstimate | None
    dataset: DatasetTokens
    fixes: tuple[search.Fix, ...] = ()

    @property
    def plan(self) -> Plan:
        return self.estimate.plan

    def as_dict(self) -> dict:
        d = self.estimate.as_dict()
        d["speed"] = self.speed.as_dict() if self.speed else None
        d["dataset"] = self.dataset.as_dict()
        d["fixes"] = [f.as_dict() for f in self.fixes]
        d["checkpoint_bytes"] = disk.checkpoint_bytes(self.estimate.model, self.plan)
        d["disk_bytes"] = disk.disk_bytes(self.estimate.model, self.plan)
        return d


def estimate(model: ModelSpec, plan: Plan, gpu: GpuSpec | None, dataset: DatasetTokens | None = None,
             epochs: float | None = None, price_per_hour: float | None = None) -> Report:
    dataset = dataset or DatasetTokens(None, "unknown")
    top = search.max_micro_batch(model, plan, gpu) if gpu else None
    est = memory.estimate(model, plan, gpu, top)
    timing = speed.estimate(model, plan, gpu, dataset.tokens, epochs, price_per_hour) if gpu else None
    found = tuple(search.fixes(model, plan, gpu)) if gpu and not est.fits else ()
    return Report(est, timing, dataset, found)


def apply_fix(report: Report, index: int) -> Report:
    """The report of the plan that the report's fix number `index` gives."""
    if not 0 <= index < len(report.fixes):
        raise PlanError(f"there is no fix {index + 1}; {len(report.fixes)} offered")
    sp = report.speed
    return estimate(report.estimate.model, report.fixes[index].plan, report.estimate.gpu, report.dataset,
                    sp.epochs if sp else None, sp.price_per_hour if sp else None)


# ====================================================================== recommend
@dataclass(frozen=True)
class Recommended:
    advice: recommend.Advice
    report: Report                 # the recommended plan's estimate, with fixes where it does not fit
    data: object = None            # planner.data.DataStats when a file was given

    @property
    def plan(self) -> Plan:
        return self.advice.plan

    @property
    def dataset(self) -> DatasetTokens:
        return self.report.dataset

    def as_dict(self) -> dict:
        return {**self.advice.as_dict(), "dataset": self.dataset.as_dict(),
                "fixes": [f.as_dict() for f in self.report.fixes],
                "data": self.data.as_dict() if self.data is not None else None}


def recommend_plan(model: ModelSpec, base: Plan, gpu: GpuSpec, data_path: str | None = None,
                   examples: int | None = None, task_kind: str = "general", given: frozenset[str] = frozenset(),
                   tokens: int | None = None, price_per_hour: float | None = None,
                   model_path: str | None = None, grow: bool = True) -> Recommended:
    """recommend from flags or a data file: the file's rows, length percentiles and tokens feed
    the rules, its recommended length sets the sequence unless --seq-len was given. Without
    `grow` the GPU count stays the user's (the wizard): a plan that does not fit there comes
    with the changes that do, more GPUs among them."""
    stats, max_length = None, None
    if data_path:
        from planner import data

        stats = data.inspect(data_path, task=base.task, model_path=model_path)
        examples = stats.rows
        max_length = stats.recommended_max_length()
    seq_len = base.seq_len if "seq_len" in given or not max_length else max_length
    ds = dataset_tokens(seq_len, base.packing, stats, examples, tokens)
    advice = recommend.recommend(model, base, gpu, examples=examples, task_kind=task_kind, max_length=max_length,
                                 dataset_tokens=ds.tokens, price_per_hour=price_per_hour, given=given, grow=grow)
    plan = advice.plan
    if stats is not None:
        plan = plan.with_(data=str(Path(data_path).resolve()), data_format=stats.format)
    return Recommended(advice, estimate(model, plan, gpu, ds, price_per_hour=price_per_hour), stats)


def capacity(model: ModelSpec, plan: Plan, gpus: list[GpuSpec] | None, dataset: DatasetTokens,
             given: frozenset[str] = frozenset(), price_per_hour: float | None = None) -> list:
    from planner import capacity as cap

    return cap.setups(model, plan, gpus, dataset.tokens, given, price_per_hour)


# ====================================================================== render
def fit_refusal(report: Report) -> str | None:
    """Why a plan may not be rendered: it does not fit its GPU (with the changes that do)."""
    est = report.estimate
    if est.gpu is None or est.fits:
        return None
    options = "; ".join(f.describe() for f in report.fixes) or "none at this GPU count: ftplan recommend shows the GPUs it needs"
    return (f"the plan does not fit: {est.total_bytes / 2**30:.1f} GiB of {est.gpu.memory_bytes / 2**30:.1f} GiB "
            f"({est.gpu.name}); changes that fit: {options}; or render it anyway with --allow-oom")


def render_run(report: Report, run_dir: Path, model_path: str, data_path: str, data_format: str, command: str,
               recommendations=(), force: bool = False, allow_oom: bool = False) -> render.RenderResult:
    """Write the run directory of a plan that fits (or, with allow_oom, of one that does not)."""
    refusal = fit_refusal(report)
    if refusal and not allow_oom:
        raise PlanError(refusal)
    est = report.estimate
    plan, warning = disk.fit_to_disk(est.model, est.plan, disk.free_bytes(Path(run_dir)))  # fewer checkpoints on a small disk
    result = render.render(plan, est.model, Path(run_dir), model_path, data_path, data_format, command,
                           estimate=est, recommendations=recommendations, force=force,
                           dataset_tokens=report.dataset.tokens)
    return replace(result, warnings=(warning,) if warning else ())


def preview(report: Report, model_path: str, data_path: str, data_format: str, recommendations=(),
            run_dir: str = "run") -> str:
    """train.py as it would be written into `run_dir`, without writing anything."""
    est = report.estimate
    files = render.render_files(est.plan, est.model, Path(run_dir), model_path, data_path, data_format,
                                "ftplan (wizard)", estimate=est, recommendations=recommendations,
                                dataset_tokens=report.dataset.tokens)
    return files["train.py"]


def default_model_path(model: ModelSpec, given: str) -> str:
    """Where the script loads the model from: the local directory, else the Hub id."""
    if model.path:
        return model.path
    return model.hub_id or given


def default_run_dir(model: str, plan: Plan) -> str:
    """runs/<model>-<method>-<task>, from the model's name or path."""
    name = Path(model.rstrip("/")).name or "model"
    slug = "".join(c if c.isalnum() or c in "-_." else "-" for c in name).strip("-.") or "model"
    return f"runs/{slug}-{plan.method}-{plan.task}"


# ====================================================================== runs
def start_run(run_dir: Path, resume: bool = False, force: bool = False):
    """The runner's events for a run directory: a local run, or the log of a job submitted to
    SLURM (followed rather than started again)."""
    from runner import status

    run_dir = Path(run_dir)
    if status.read(run_dir).get("state") == "submitted" and not (resume or force):
        from runner import slurm

        return slurm.follow(run_dir)
    from runner import process

    return process.run(run_dir, resume=resume, force=force)


def stop_run(run_dir: Path) -> bool:
    """Ask a running script to checkpoint and stop (SIGINT to its process group). False if no
    run is alive there."""
    import os
    import signal

    from runner import status

    pid = status.read(Path(run_dir)).get("pid")
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.killpg(pid, signal.SIGINT)  # the script checkpoints and exits 130
    except (ProcessLookupError, PermissionError):
        return False
    return True
