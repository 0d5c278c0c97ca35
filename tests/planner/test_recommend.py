"""Recommendations: every value names an existing rule and its source; memory-driven choices."""

from planner import hardware, knowledge, memory, models, recommend, search
from planner.plan import Plan

RULE_IDS = {r["id"] for r in knowledge.rows("hyperparams", "rule")} | \
    {s["id"] for s in knowledge.rows("distributed", "stage")} | \
    {f"targets.{f['name']}" for f in knowledge.rows("targets", "family")} | \
    {r["id"] for r in knowledge.rows("speed", "lever")}


def advise(model="Llama-3.1-8B", gpu="H100-SXM", gpus=1, **kw):
    m = models.resolve(model)
    return recommend.recommend(m, Plan(model=model, gpus=gpus), hardware.resolve(gpu), **kw)


def test_every_recommendation_cites_a_known_rule_and_source():
    a = advise(examples=5000, task_kind="chat")
    settings = {r.setting for r in a.recommendations}
    assert {"method", "rank", "alpha", "dropout", "learning_rate", "scheduler", "warmup_ratio", "epochs", "targets",
            "batch", "grad_accum", "grad_ckpt"} <= settings
    for r in a.recommendations:
        assert r.rule_id in RULE_IDS and r.source and r.why


def test_rules_follow_the_guides_tables():
    a = {r.setting: r.value for r in advise(examples=500, task_kind="code").recommendations}
    assert a["rank"] == 64 and a["alpha"] == 128          # 000: r=64 code generation; alpha = 2 x rank
    assert a["epochs"] == 3 and a["dropout"] == 0.05      # small data: 3 epochs, keep dropout
    b = {r.setting: r.value for r in advise(examples=60_000, task_kind="chat").recommendations}
    assert b["epochs"] == 1 and b["dropout"] == 0.0 and b["rank"] == 16


def test_grad_ckpt_only_when_needed_and_batch_reaches_effective():
    roomy = advise(model="Qwen2.5-0.5B", examples=5000)
    assert roomy.plan.grad_ckpt is False
    assert roomy.plan.effective_batch >= 32
    tight = advise(model="Llama-3.1-8B", gpu="A10G", examples=5000)
    assert tight.plan.grad_ckpt is True
    assert tight.estimate.fits


def test_method_falls_back_to_qlora_when_lora_does_not_fit():
    a = advise(model="Qwen2.5-14B", gpu="RTX-4090", examples=5000)
    assert a.plan.method == "qlora"
    assert a.estimate.fits


def test_large_full_fine_tune_gets_zero_and_offload_on_eight_gpus():
    m = models.resolve("Llama-3.1-70B")
    a = recommend.recommend(m, Plan(model="x", method="full", gpus=8), hardware.resolve("H100-SXM"),
                            examples=500_000, method_given=True)
    assert a.plan.zero == 3 and a.estimate.fits
    assert memory.total_bytes(m, a.plan) <= hardware.resolve("H100-SXM").memory_bytes


def test_fewest_gpus_for_a_plan_that_does_not_fit_one():
    m, gpu = models.resolve("Llama-3.1-70B"), hardware.resolve("H100-SXM")
    placed = search.place(m, Plan(model="x", method="full"), gpu, 32)
    n = placed.count
    assert n > 1 and search.judge(m, placed.plan, gpu).fits
    assert search.configure(m, search.layout(Plan(model="x", method="full"), n // 2), gpu, 32) is None


def test_summary_names_gpus_engine_and_per_gpu_memory():
    m = models.resolve("Llama-3.1-70B")
    a = recommend.recommend(m, Plan(model="x", method="full", gpus=8), hardware.resolve("H100-SXM"),
                            examples=100_000, method_given=True)
    assert a.summary.startswith(f"71B full SFT: {a.plan.world_size} x H100-SXM")
    assert f"ZeRO-{a.plan.zero}" in a.summary
    assert f"{a.estimate.total_bytes / 2**30:.1f} GiB per GPU" in a.summary
    assert a.as_dict()["summary"] == a.summary
