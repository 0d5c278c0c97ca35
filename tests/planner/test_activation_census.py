"""The activation formula against a census of what autograd really saves: a small model of
each family runs on the CPU under bf16 autocast and every saved tensor is counted
(bench/census.py). One layer's bytes per token must match the formula."""

import pytest

pytest.importorskip("torch")
pytest.importorskip("peft")

from bench import census  # noqa: E402
from planner import memory, models  # noqa: E402
from planner.plan import Plan  # noqa: E402

CASES = [
    ("Llama-3.2-1B", "full"), ("Llama-3.2-1B", "lora"), ("Llama-3.2-1B", "ia3"),
    ("Qwen2.5-0.5B", "full"), ("Qwen2.5-0.5B", "lora"), ("Qwen2.5-0.5B", "ia3"),
    ("Qwen3-0.6B", "full"), ("Qwen3-0.6B", "lora"),
    ("Gemma-3-1B", "full"), ("Gemma-3-1B", "lora"), ("Gemma-3-1B", "ia3"),
    ("Gemma-2-2B", "lora"),  # eager attention: the S x S terms
    ("Mistral-7B-v0.3", "lora"),
    ("Phi-3-mini-4k", "lora"), ("Phi-3-mini-4k", "ia3"), ("Phi-3-mini-4k", "full"),
    # QLoRA on the CPU's bitsandbytes, and with PEFT's prepare_model_for_kbit_training (--kbit-prep)
    ("Llama-3.2-1B", "qlora"), ("Llama-3.2-1B", "qlora+kbit_prep"), ("Qwen2.5-0.5B", "qlora+kbit_prep"),
    ("Gemma-3-1B", "qlora+kbit_prep"), ("Phi-3-mini-4k", "qlora"), ("Phi-3-mini-4k", "qlora+kbit_prep"),
    # GPT-NeoX is held by the GPU census (test_gpu_census.py): its LayerNorms run in fp32
    # under CUDA autocast only, and the CPU's sdpa hands back an output o_proj can share.
]


@pytest.mark.parametrize("name,method", CASES)
def test_formula_matches_saved_tensor_census(name, method):
    spec = models.resolve(name)
    method, _, prep = method.partition("+")
    if method == "qlora":
        pytest.importorskip("bitsandbytes")
    plan = Plan(model=name, method=method, seq_len=census.TOKENS[0][1], compile=False,  # the census counts eager autograd
                kbit_prep=prep == "kbit_prep")
    measured = census.per_layer_per_token(spec, plan)
    formula = memory.layer_activation_bytes_per_token(census.small_spec(spec, 3), plan)
    assert formula == pytest.approx(measured, rel=0.015)


MOE = ["Qwen/Qwen3-30B-A3B", "mistralai/Mixtral-8x7B-v0.1", "allenai/OLMoE-1B-7B-0924", "Qwen/Qwen1.5-MoE-A2.7B"]


@pytest.mark.parametrize("repo", MOE)
@pytest.mark.parametrize("method", ["lora", "full"])
def test_mixture_of_experts_formula_matches_the_census_of_its_published_config(repo, method, tmp_path):
    """The routed experts (grouped matmuls over each token's top-k copies), the router and a
    shared expert, counted from the published config's own modelling code at a small width."""
    import json
    from pathlib import Path

    from planner import census as config_census

    cfg = json.loads((Path(__file__).parent / "data" / "published_configs.json").read_text())[repo]
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config_census.small_config(cfg, 3)))
    small = models.resolve(str(tmp_path))
    assert small.is_moe and small.num_experts == (cfg.get("num_local_experts") or cfg.get("num_experts"))
    plan = Plan(model=str(tmp_path), method=method, seq_len=config_census.TOKENS[0][1], compile=False)
    measured = config_census.per_layer_per_token(cfg, method, small.target_modules("all-linear"))
    assert memory.layer_activation_bytes_per_token(small, plan) == pytest.approx(measured, rel=0.03)


@pytest.mark.parametrize("name", ["Llama-3.2-1B", "Mistral-7B-v0.3", "Qwen2.5-0.5B", "Qwen3-0.6B", "Gemma-2-2B", "Gemma-3-1B",
                                  "Phi-3-mini-4k", "Pythia-1B", "Falcon-7B"])
def test_qlora_counts_the_weights_bitsandbytes_really_quantizes(name):
    """A 4-bit load of a small model of each family on the CPU: the weights in bitsandbytes'
    Linear4bit layers are what the model's own code says a load converts (planner/inventory.py)
    and what the estimate counts in NF4 at the small width. Falcon's layers subclass nn.Linear,
    which transformers does not convert: none is quantized, and a QLoRA plan is refused."""
    pytest.importorskip("bitsandbytes")
    import bitsandbytes as bnb

    from planner import inventory
    from planner.errors import PlanError
    from planner.plan import validate

    spec = models.resolve(name)
    small = census.small_spec(spec, 2)
    plan = Plan(model=name, method="qlora", seq_len=64)
    bf16 = census._model(small, Plan(model=name, method="full", seq_len=64))
    loaded = census._quantized(bf16, plan)
    in_4bit = sum(m.in_features * m.out_features for m in loaded.modules() if isinstance(m, bnb.nn.Linear4bit))
    assert in_4bit == inventory._bnb_params(bf16) == small.quantized_params()
    if spec.quantized_params() == 0:
        assert name == "Falcon-7B"
        with pytest.raises(PlanError, match="--method lora"):
            validate(plan, spec)
    else:
        assert in_4bit > 0 and validate(plan, spec) is plan
