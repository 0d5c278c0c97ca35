"""Render -> run >= 3 steps -> checkpoint/adapter saved -> resume continues -> merged model
loads and generates. Real training on the CPU with a tiny model built in the test."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from planner import evidence, models, render
from planner.plan import Plan
from runner import process, status
from runner.events import Finished, Metric

pytest.importorskip("peft")

CPU_PLAN = dict(batch=4, seq_len=160, precision="fp32", learning_rate=3e-3, max_steps=4, save_steps=2,
                eval_steps=2, logging_steps=1, eval_fraction=0.1, rank=4, alpha=8, virtual_tokens=4)


def _render(tmp_path, tiny_model, data, fmt, **plan):
    spec = models.resolve(str(tiny_model))
    p = Plan(model=str(tiny_model), data=str(data), data_format=fmt, **{**CPU_PLAN, **plan})
    run_dir = tmp_path / "run"
    render.render(p, spec, run_dir, str(tiny_model), str(data), fmt, command="pytest")
    return run_dir, p


def _run(run_dir, **kw):
    events = list(process.run(run_dir, **kw))
    assert isinstance(events[-1], Finished)
    return events


def _metrics(run_dir):
    return [json.loads(l) for l in (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("method,task", [
    ("lora", "sft"), ("full", "sft"), ("dora", "sft"), ("prefix", "sft"), ("ia3", "sft"),
    ("lora", "dpo"), ("full", "dpo"), ("dora", "dpo"), ("prefix", "dpo"), ("ia3", "dpo"),
])
def test_method_trains_checkpoints_resumes_and_merges(tmp_path, tiny_model, dataset, method, task):
    fmt = "preference" if task == "dpo" else "alpaca"
    run_dir, plan = _render(tmp_path, tiny_model, dataset(fmt), fmt, method=method, task=task, max_steps=2, save_steps=2)
    events = _run(run_dir)
    done = events[-1]
    assert done.state == "succeeded", (run_dir / "stderr.log").read_text()[-3000:]
    steps = [e for e in events if isinstance(e, Metric)]
    assert [e.step for e in steps] == [1, 2]
    assert all(e.values["loss"] == e.values["loss"] for e in steps)  # finite
    assert (run_dir / "checkpoints" / "step-000002" / "trainable.pt").exists()
    final = Path(done.output)
    assert (final / ("model.safetensors" if method == "full" else "adapter_config.json")).exists()
    assert status.read(run_dir)["state"] == "succeeded"

    # resume continues from the checkpoint to a later max_steps, with the same plan
    text = (run_dir / "train.py").read_text().replace("MAX_STEPS = 2", "MAX_STEPS = 3")
    (run_dir / "train.py").write_text(text)
    events = _run(run_dir, resume=True)
    assert events[-1].state == "succeeded", (run_dir / "stderr.log").read_text()[-3000:]
    assert [e.step for e in events if isinstance(e, Metric)] == [3]

    if method in ("lora", "dora", "ia3"):
        out = subprocess.run([sys.executable, str(run_dir / "merge.py")], capture_output=True, text=True)
        assert out.returncode == 0, out.stderr[-2000:]
        merged = run_dir / "output" / "merged"
        gen = subprocess.run(
            [sys.executable, "-c",
             "import sys, torch; from transformers import AutoModelForCausalLM, AutoTokenizer;"
             "m = AutoModelForCausalLM.from_pretrained(sys.argv[1]); t = AutoTokenizer.from_pretrained(sys.argv[1]);"
             "ids = t('Repeat the words.', return_tensors='pt').input_ids;"
             "out = m.generate(ids, max_new_tokens=5, do_sample=False, min_new_tokens=5); print(out.shape[1] - ids.shape[1])",
             str(merged)], capture_output=True, text=True)
        assert gen.returncode == 0, gen.stderr[-2000:]
        assert gen.stdout.strip().splitlines()[-1] == "5"


@pytest.mark.parametrize("fmt", ["alpaca", "sharegpt", "messages", "completion"])
def test_every_sft_format_trains(tmp_path, tiny_model, dataset, fmt):
    run_dir, _ = _render(tmp_path, tiny_model, dataset(fmt), fmt, method="lora", max_steps=3, save_steps=10)
    events = _run(run_dir)
    assert events[-1].state == "succeeded", (run_dir / "stderr.log").read_text()[-3000:]
    assert len([e for e in events if isinstance(e, Metric)]) == 3


def test_loss_falls_with_the_demo_settings(tmp_path, tiny_model, dataset):
    run_dir, _ = _render(tmp_path, tiny_model, dataset("alpaca", 160), "alpaca", method="lora", max_steps=24,
                         save_steps=100, eval_fraction=0.0, learning_rate=5e-3, rank=8, alpha=16, seq_len=128)
    events = _run(run_dir)
    losses = [e.values["loss"] for e in events if isinstance(e, Metric)]
    assert events[-1].state == "succeeded"
    assert sum(losses[-4:]) / 4 < sum(losses[:4]) / 4 - 0.1


def _tiny_of(out_dir, config_class, **extra):
    """A 2-layer model of another architecture with the tiny model's tokenizer."""
    import transformers

    from runner.tiny import build_model, build_tokenizer

    tok = build_tokenizer(out_dir)
    shape = dict(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, head_dim=16, bos_token_id=2, eos_token_id=3, pad_token_id=0)
    config = getattr(transformers, config_class)(**{**shape, **extra})
    return build_model(out_dir, config)


@pytest.mark.parametrize("config_class,transform", [("Gemma2Config", dict(final_logit_softcapping=0.5)),
                                                    ("GraniteConfig", dict(logits_scaling=4.0))])
@pytest.mark.parametrize("loss", ["chunked"])
def test_a_loss_that_applies_the_head_itself_applies_the_models_logit_transform(tmp_path, dataset, config_class, transform, loss):
    """Gemma 2 soft-caps its logits and Granite scales them in their forward: the chunked loss,
    which multiplies the head's weight itself, does the same, so its first-step loss is the
    standard loss's (the model's own logits)."""
    model_dir = _tiny_of(tmp_path / "model", config_class, **transform)
    first = {}
    for kind in ("standard", loss):
        run_dir, _ = _render(tmp_path / kind, model_dir, dataset("alpaca"), "alpaca", method="lora", loss=kind,
                             max_steps=1, save_steps=10, eval_fraction=0.0)
        text = (run_dir / "train.py").read_text()
        assert ("LOGIT_SOFTCAP" in text or "LOGIT_SCALE" in text) == (kind != "standard")
        events = _run(run_dir)
        assert events[-1].state == "succeeded", (run_dir / "stderr.log").read_text()[-3000:]
        first[kind] = [e for e in events if isinstance(e, Metric)][0].values["loss"]
    assert first["standard"] == pytest.approx(first[loss], rel=1e-4)


def test_chunked_loss_matches_standard(tmp_path, tiny_model, dataset):
    """The chunked loss is the same function as the standard one: equal first-step loss."""
    first = {}
    for loss in ("standard", "chunked"):
        run_dir, _ = _render(tmp_path / loss, tiny_model, dataset("alpaca"), "alpaca", method="lora", loss=loss,
                             max_steps=1, save_steps=10, eval_fraction=0.0)
        events = _run(run_dir)
        assert events[-1].state == "succeeded", (run_dir / "stderr.log").read_text()[-3000:]
        first[loss] = [e for e in events if isinstance(e, Metric)][0].values["loss"]
    assert first["standard"] == pytest.approx(first["chunked"], rel=1e-4)


@pytest.mark.parametrize("config_class,queries", [("DeepseekV2Config", None), ("DeepseekV3Config", 24)])
@pytest.mark.parametrize("method", ["lora", "full"])
def test_latent_attention_with_a_dense_first_layer_and_shared_experts_trains(tmp_path, dataset, config_class, queries, method):
    """DeepSeek-V2 and V3 layouts (latent attention, with and without low-rank queries; a dense
    first layer before mixture-of-experts layers with shared experts): the rendered script
    trains them, adapting what the estimate counts (all-linear is the attention projections,
    PEFT moving MLP targets onto the fused experts), with the trainable count the plan states."""
    model_dir = _tiny_of(tmp_path / "model", config_class, num_key_value_heads=4, head_dim=8, kv_lora_rank=32, q_lora_rank=queries, qk_nope_head_dim=16,
                         qk_rope_head_dim=8, v_head_dim=16, n_routed_experts=4, num_experts_per_tok=2, n_shared_experts=1,
                         moe_intermediate_size=32, first_k_dense_replace=1, n_group=1, topk_group=1)
    spec = models.resolve(str(model_dir))
    assert spec.latent_attention and spec.dense_layers == 1 and spec.mlp_lora_moves_to_experts
    assert evidence.measured_row(spec) is not None or "census" in spec.derived_from  # measured, or held to its census
    run_dir, plan = _render(tmp_path, model_dir, dataset("alpaca"), "alpaca", method=method, max_steps=2, save_steps=10)
    events = _run(run_dir)
    assert events[-1].state == "succeeded", (run_dir / "stderr.log").read_text()[-3000:]
    assert all(e.values["loss"] == e.values["loss"] for e in events if isinstance(e, Metric))
    from planner import script

    started = json.loads((run_dir / "stdout.log").read_text().splitlines()[0])
    assert started["event"] == "start" and started["trainable_params"] == script.trainable_params(spec, plan)


@pytest.mark.parametrize("method", ["lora", "full"])
def test_a_hybrid_of_convolution_and_attention_layers_trains_one_example_a_row(tmp_path, dataset, method):
    """An LFM2 layout (gated short-convolution layers beside attention layers): the rendered
    script trains it with the trainable count the plan states, and does not pack (the
    convolution would read across examples)."""
    model_dir = _tiny_of(tmp_path / "model", "Lfm2Config", layer_types=["conv", "full_attention"], block_ff_dim=192,
                         block_multiple_of=32)
    spec = models.resolve(str(model_dir))
    assert spec.conv_layers == 1 and (evidence.measured_row(spec) is not None or "census" in spec.derived_from)
    run_dir, plan = _render(tmp_path, model_dir, dataset("alpaca"), "alpaca", method=method, max_steps=2, save_steps=10)
    assert plan.packing and '"attention_mask"' in (run_dir / "train.py").read_text()
    events = _run(run_dir)
    assert events[-1].state == "succeeded", (run_dir / "stderr.log").read_text()[-3000:]
    from planner import script

    started = json.loads((run_dir / "stdout.log").read_text().splitlines()[0])
    assert started["trainable_params"] == script.trainable_params(spec, plan)


def test_full_fine_tuning_of_a_mixture_of_experts_trains_its_routers_with_their_balancing_loss(tmp_path, dataset):
    """The routers of a mixture of experts train: every loss adds their load-balancing loss as
    the model's own forward does (router_aux_loss_coef x load_balancing_loss_func), so the first
    step's loss is the model's own under the chunked and standard losses too, and it grows with
    the coefficient."""
    first = {}
    for coef in (0.0, 0.5):
        model_dir = _tiny_of(tmp_path / f"model-{coef}", "MixtralConfig", num_local_experts=4, num_experts_per_tok=2,
                             router_aux_loss_coef=coef)
        for loss in ("model", "chunked", "standard"):
            run_dir, _ = _render(tmp_path / f"{coef}-{loss}", model_dir, dataset("alpaca"), "alpaca", method="full", loss=loss,
                                 max_steps=1, save_steps=10, eval_fraction=0.0)
            events = _run(run_dir)
            assert events[-1].state == "succeeded", (run_dir / "stderr.log").read_text()[-3000:]
            first[coef, loss] = [e for e in events if isinstance(e, Metric)][0].values["loss"]
    for coef in (0.0, 0.5):
        assert first[coef, "chunked"] == pytest.approx(first[coef, "model"], rel=1e-4)
        assert first[coef, "standard"] == pytest.approx(first[coef, "model"], rel=1e-4)
    assert first[0.5, "model"] > first[0.0, "model"] + 0.1  # the balancing loss is at least 1 per layer


def test_lora_on_the_fused_experts_trains_them_and_saves_them_in_the_adapter(tmp_path, dataset):
    """--targets attention,experts: PEFT's LoRA on the experts' 3-D weights (target_parameters)
    trains beside the attention's, with the trainable count the plan states, and the final
    adapter holds the experts' A and B, B moved off its zero start."""
    model_dir = _tiny_of(tmp_path / "model", "MixtralConfig", num_local_experts=4, num_experts_per_tok=2)
    spec = models.resolve(str(model_dir))
    run_dir, plan = _render(tmp_path, model_dir, dataset("alpaca"), "alpaca", method="lora", targets="attention,experts",
                            max_steps=2, save_steps=10, eval_fraction=0.0)
    assert "target_parameters=TARGET_PARAMETERS" in (run_dir / "train.py").read_text()
    events = _run(run_dir)
    assert events[-1].state == "succeeded", (run_dir / "stderr.log").read_text()[-3000:]
    from safetensors.torch import load_file

    from planner import script

    started = json.loads((run_dir / "stdout.log").read_text().splitlines()[0])
    assert started["trainable_params"] == script.trainable_params(spec, plan) > \
        script.trainable_params(spec, plan.with_(targets="attention"))
    saved = load_file(str(next(run_dir.glob("**/final/adapter_model.safetensors"))))
    experts_b = [w for k, w in saved.items() if "experts" in k and "lora_B" in k]
    assert len(experts_b) == 2 * spec.num_layers and all(w.abs().sum() > 0 for w in experts_b)
    # merge.py folds the experts' LoRA into their weights: the merged model computes what the adapter does
    out = subprocess.run([sys.executable, str(run_dir / "merge.py")], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    adapter = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32),
                                        next(run_dir.glob("**/final")))
    merged = AutoModelForCausalLM.from_pretrained(next(run_dir.glob("**/merged")), dtype=torch.float32)
    ids = torch.randint(4, 60, (1, 12))
    with torch.no_grad():
        assert torch.allclose(adapter(input_ids=ids).logits, merged(input_ids=ids).logits, atol=1e-4)
