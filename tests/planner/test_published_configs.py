"""Configs of current families, written from their published config.json files: ftplan either
refuses each with a reason, or counts its parameters within 1% of what transformers builds and
its LoRA trainable parameters within 2% of what PEFT adapts, for `attention` and `all-linear`.
The truth here is built independently of planner/inventory.py: transformers on the meta
device, PEFT on that model."""

import copy
import json
import warnings
from pathlib import Path

import pytest

from planner import inventory, models
from planner.errors import ModelError

pytest.importorskip("peft")  # the truth is built with transformers and PEFT

CONFIGS = {k: v for k, v in json.loads((Path(__file__).parent / "data" / "published_configs.json").read_text()).items()
           if not k.startswith("_")}
# Parts ftplan does not model: these must be refused, and say why.
MUST_REFUSE = {
    "ai21labs/Jamba-v0.1": "hybrid layers",
    "Qwen/Qwen3-Next-80B-A3B-Instruct": "hybrid layers", "google/gemma-3-4b-it": "multimodal",
    # layers that keep tensors the activation formula does not count (attention sinks and the
    # clamped SwiGLU experts; norms after each sublayer and across the whole q and k)
    "openai/gpt-oss-20b": "for backward", "allenai/OLMo-2-1124-7B": "for backward",
}


def write(tmp_path, cfg) -> str:
    path = tmp_path / "model" / "config.json"
    path.parent.mkdir()
    path.write_text(json.dumps(cfg))
    return str(path.parent)


def built(cfg):
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    kwargs = dict(cfg)
    config = AutoConfig.for_model(kwargs.pop("model_type"), **kwargs)
    with torch.device("meta"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return AutoModelForCausalLM.from_config(config)


def peft_trainable(model, targets, parameters=None) -> int:
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=16, target_modules=targets or None, target_parameters=parameters, init_lora_weights=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        adapted = get_peft_model(copy.deepcopy(model), config)
    return sum(p.numel() for p in adapted.parameters() if p.requires_grad)


def test_at_least_twenty_configs_of_current_families():
    assert len(CONFIGS) >= 20
    assert len({c.get("model_type") for c in CONFIGS.values()}) >= 20


@pytest.mark.parametrize("repo", sorted(CONFIGS))
def test_each_config_is_refused_with_a_reason_or_counted_as_transformers_and_peft_build_it(repo, tmp_path):
    cfg = CONFIGS[repo]
    try:
        spec = models.resolve(write(tmp_path, cfg))
    except ModelError as e:
        assert repo not in MUST_REFUSE or MUST_REFUSE[repo] in str(e), str(e)
        assert "\n" not in str(e) and len(str(e)) > 40
        return
    assert repo not in MUST_REFUSE, f"{repo} has {MUST_REFUSE.get(repo)} and was accepted"
    model = built(cfg)
    truth = sum(p.numel() for p in model.parameters())
    assert abs(spec.total_params() - truth) <= 0.01 * truth, (spec.total_params(), truth)
    for targets in ("attention", "all-linear"):
        names = spec.target_modules(targets)
        adapted = peft_trainable(model, names)
        assert abs(spec.lora_params(names, 16) - adapted) <= 0.02 * adapted, (targets, spec.lora_params(names, 16), adapted)
    # ftplan's all-linear is PEFT's own all-linear, but where PEFT moves MLP targets onto the experts
    if (not spec.is_moe or spec.shared_intermediate_size) and not spec.mlp_lora_moves_to_experts:
        assert abs(spec.lora_params(spec.target_modules("all-linear"), 16) - peft_trainable(model, "all-linear")) <= \
            0.02 * peft_trainable(model, "all-linear")
    # the fused experts (--targets experts): counted as PEFT's target_parameters adapts them, or refused
    if spec.is_moe:
        try:
            parameters = spec.target_parameters("experts")
        except ModelError as e:
            assert "experts" in str(e) and "--targets" in str(e)
            return
        adapted = peft_trainable(model, [], parameters)
        assert abs(spec.expert_lora_params(parameters, 16) - adapted) <= 0.02 * adapted, (spec.expert_lora_params(parameters, 16), adapted)


def test_most_current_families_are_accepted_and_every_refusal_is_one_we_expect(tmp_path):
    accepted, refused = [], {}
    for i, (repo, cfg) in enumerate(sorted(CONFIGS.items())):
        d = tmp_path / str(i)
        d.mkdir()
        try:
            models.resolve(write(d, cfg))
            accepted.append(repo)
        except ModelError as e:
            refused[repo] = str(e)
    assert set(MUST_REFUSE) <= set(refused)
    assert len(accepted) >= 15, refused


def test_without_the_models_code_only_families_with_a_table_are_planned(tmp_path, monkeypatch):
    """No torch or transformers: a known family's config counts the same from its table (tying
    defaults as transformers sets them); an architecture without a table is refused, with the fix."""
    with_code = {}
    for i, repo in enumerate(("meta-llama/Llama-3.1-8B", "google/gemma-2-9b", "tiiuae/falcon-7b", "THUDM/GLM-4-9B-0414")):
        d = tmp_path / f"a{i}"
        d.mkdir()
        with_code[repo] = models.resolve(write(d, CONFIGS[repo])).total_params()
    monkeypatch.setattr(inventory, "available", lambda: False)
    for i, repo in enumerate(("meta-llama/Llama-3.1-8B", "google/gemma-2-9b", "tiiuae/falcon-7b")):
        d = tmp_path / f"b{i}"
        d.mkdir()
        assert models.resolve(write(d, CONFIGS[repo])).total_params() == with_code[repo]
    d = tmp_path / "glm"
    d.mkdir()
    with pytest.raises(ModelError, match="pip install"):
        models.resolve(write(d, CONFIGS["THUDM/GLM-4-9B-0414"]))


def test_an_architecture_not_measured_is_accepted_only_where_a_census_of_its_layers_agrees(tmp_path):
    """Every accepted config of a family never measured on a GPU (and not a LayerNorm one, whose
    CPU census differs from the GPU's) says its activation formula was held to a census of its
    own layers: Granite and Cohere."""
    from planner import evidence

    checked = []
    for i, (repo, cfg) in enumerate(sorted(CONFIGS.items())):
        d = tmp_path / str(i)
        d.mkdir()
        try:
            spec = models.resolve(write(d, cfg))
        except ModelError:
            continue
        if evidence.measured_row(spec) is None and spec.norm != "layernorm":
            assert "census" in spec.derived_from, repo
            checked.append(repo)
    # GLM-4, SmolLM3 and the Mixtral, Qwen3-MoE, Qwen1.5-MoE and OLMoE layouts were checked so
    # until their runs on the H200 made them measured
    assert {"ibm-granite/granite-3.1-8b-base", "CohereForAI/c4ai-command-r-v01", "deepseek-ai/DeepSeek-V3"} <= set(checked)


def test_latent_attention_adapts_what_peft_adapts_and_refuses_mlp_targets_peft_would_move_onto_the_experts(tmp_path):
    """DeepSeek-V2-Lite: latent-attention projections, one dense layer, then experts with ungated
    shared ones. Where PEFT, asked for gate_proj/up_proj/down_proj, adapts the fused experts
    instead (its conversion of transformers-v4 targets), all-linear is the attention
    projections and an MLP name is refused with the fix; where it does not, they are adapted."""
    cfg = CONFIGS["deepseek-ai/DeepSeek-V2-Lite"]
    spec = models.resolve(write(tmp_path, cfg))
    assert spec.latent_attention and spec.dense_layers == cfg["first_k_dense_replace"] and not spec.shared_expert_gated
    small = built({**cfg, "num_hidden_layers": 2})
    from peft import LoraConfig, get_peft_model

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        adapted = get_peft_model(copy.deepcopy(small), LoraConfig(r=4, target_modules=["gate_proj", "up_proj", "down_proj"]))
    moves = bool(adapted.base_model.targeted_parameter_names)
    assert spec.mlp_lora_moves_to_experts == moves
    if moves:
        assert spec.target_modules("all-linear") == spec.target_modules("attention")
        with pytest.raises(ModelError, match="fused experts.*--targets attention"):
            spec.target_modules("gate_proj")
    else:
        assert "gate_proj" in spec.target_modules("all-linear")
