"""The one search (planner/search.py): every plan that recommend, capacity or a fix returns
passes validation and fits by the estimator, and recommend and capacity agree. A property
test over the catalog: every model x catalog GPU x method x SFT/DPO x 1, 8 and 16 GPUs,
sampled with a fixed seed."""

import itertools
import random

import pytest

from planner import capacity, hardware, memory, models, recommend, search
from planner.errors import PlanError
from planner.plan import METHODS, TASKS, Plan, validate

MODELS = [m.name for m in models.catalog()]
GPUS = [g.name for g in hardware.catalog()]
COUNTS = (1, 8, 16)
CASES = random.Random(16).sample(list(itertools.product(MODELS, GPUS, METHODS, TASKS, COUNTS)), 600)


def _base(model: str, gpu: str, method: str, task: str, count: int) -> Plan:
    return Plan(model=model, method=method, task=task, gpus=min(count, 8), nodes=max(1, count // 8), gpu=gpu)


def _assert_fits(model, plan: Plan, gpu) -> None:
    validate(plan, model)
    verdict = search.judge(model, plan, gpu)
    assert verdict is not None and verdict.fits_gpu and verdict.fits_host, plan
    assert memory.total_bytes(model, plan) <= gpu.memory_bytes


@pytest.mark.parametrize("model_name,gpu_name,method,task,count", CASES)
def test_recommend_capacity_and_fixes_return_only_plans_that_fit(model_name, gpu_name, method, task, count):
    model, gpu = models.resolve(model_name), hardware.resolve(gpu_name)
    base = _base(model_name, gpu_name, method, task, count)
    try:
        advice = recommend.recommend(model, base, gpu, method_given=True)
    except PlanError as e:
        assert "does not fit" in str(e) or "cannot" in str(e) or "needs" in str(e) or "use" in str(e), e
        advice = None
    if advice is not None:
        _assert_fits(model, advice.plan, gpu)
        assert advice.estimate.fits and advice.plan.world_size >= base.world_size
        assert advice.plan.effective_batch >= 1
    # capacity on this GPU type gives what recommend gives from one GPU
    if count == 1 and gpu.bf16:
        setups = capacity.setups(model, base, [gpu])
        if advice is None:
            assert setups == []
        else:
            (setup,) = setups
            assert setup.plan == advice.plan and setup.per_gpu_bytes == advice.estimate.total_bytes
    # every change offered for a plan that does not fit, fits
    tight = base.with_(batch=16, seq_len=4096)
    try:
        validate(tight, model)
    except PlanError:
        return
    for fix in search.fixes(model, tight, gpu, limit=5):
        _assert_fits(model, fix.plan, gpu)
        assert fix.plan.effective_batch >= tight.effective_batch


def test_the_search_counts_gradients_at_the_peak_when_it_accumulates():
    """An 8B full fine-tune at batch 16 on an H200 ran out of memory; the search once offered
    batch 7 x 3 (148.5 GiB by its own estimate): the micro-batch was chosen without the
    gradients that accumulation keeps alive at the loss."""
    model, gpu = models.resolve("Llama-3.1-8B"), hardware.resolve("H200")
    plan = Plan(model=model.name, method="full", batch=16, gpu="H200")
    fixes = search.fixes(model, plan, gpu)
    assert any(f.plan.grad_accum > 1 for f in fixes)
    for fix in fixes:
        assert memory.total_bytes(model, fix.plan) == fix.total_bytes <= gpu.memory_bytes
        if fix.plan.grad_accum > 1:  # the gradients are alive at the loss: more than the same micro-step alone
            assert fix.total_bytes > memory.total_bytes(model, fix.plan.with_(grad_accum=1))


def test_fixes_never_repeat_a_setting_the_plan_already_has():
    model, gpu = models.resolve("Llama-3.1-8B"), hardware.resolve("A10G")
    plan = Plan(model=model.name, method="lora", batch=8, grad_ckpt=True, loss="chunked", gpu="A10G")
    for fix in search.fixes(model, plan, gpu, limit=5):
        assert "--grad-ckpt" not in fix.flags and "--loss chunked" not in fix.flags


def test_recommend_and_capacity_agree_on_a_70b_full_job():
    model, gpu = models.resolve("Llama-3.1-70B"), hardware.resolve("H100-SXM")
    base = Plan(model=model.name, method="full", gpu=gpu.name)
    advice = recommend.recommend(model, base, gpu, method_given=True)
    (setup,) = capacity.setups(model, base, [gpu])
    assert setup.plan == advice.plan and setup.speed.tokens_per_s == pytest.approx(advice.speed.tokens_per_s)


def test_a_fixed_gpu_count_comes_back_with_fixes_that_fit():
    """The wizard keeps the user's GPU count: a plan that does not fit there is shown as it is,
    with the changes that fit (more GPUs among them)."""
    model, gpu = models.resolve("Llama-3.1-70B"), hardware.resolve("H100-SXM")
    advice = recommend.recommend(model, Plan(model=model.name, method="full", gpu=gpu.name), gpu,
                                 method_given=True, grow=False)
    assert advice.plan.world_size == 1 and not advice.estimate.fits
    fixes = search.fixes(model, advice.plan, gpu)
    assert fixes and any(f.plan.world_size > 1 for f in fixes)
    for fix in fixes:
        _assert_fits(model, fix.plan, gpu)


def test_trl_full_dpo_that_does_not_fit_is_offered_the_precomputed_reference_first():
    """Precomputing the reference log-probs changes nothing the run learns and drops the
    reference copy, so for TRL's full DPO it is the first fix; ftplan's loop is not offered it."""
    spec, gpu = models.resolve("Llama-3.2-3B"), hardware.resolve("A100-40GB")
    plan = Plan(model=spec.name, method="full", task="dpo", trainer="trl", loss="chunked", batch=4, seq_len=2048)
    assert not memory.estimate(spec, plan, gpu).fits
    fixes = search.fixes(spec, plan, gpu)
    assert fixes[0].flags.startswith("--precompute-ref-log-probs") and fixes[0].plan.precompute_ref
    assert fixes[0].verdict.fits and fixes[0].plan.effective_batch == plan.effective_batch
    ours = search.fixes(spec, plan.with_(trainer="ftplan", loss="standard"), gpu)
    assert ours and not any(f.plan.precompute_ref for f in ours)
