"""Model catalog and --model resolution."""

import json

import pytest

from planner import memory, models
from planner.errors import ModelError
from planner.plan import Plan

CATALOG = models.catalog()


def test_catalog_has_the_families_the_issue_names():
    assert len(CATALOG) >= 25
    names = " ".join(m.name for m in CATALOG)
    for needle in ("Llama-3.1", "Llama-3.2", "Llama-3.3", "405B", "Mistral-7B", "Mixtral-8x7B", "Qwen2.5-0.5B",
                   "Qwen2.5-72B", "Qwen3", "Gemma-2", "Gemma-3", "Phi-3", "Phi-3.5", "Phi-4", "Pythia", "Falcon"):
        assert needle in names, needle


@pytest.mark.parametrize("spec", CATALOG, ids=[m.name for m in CATALOG])
def test_parameter_total_matches_published_within_1_percent(spec):
    # published totals: the model's safetensors index or card, cited in knowledge/models.toml
    assert spec.source
    assert abs(spec.total_params() - spec.published_params) / spec.published_params <= 0.01


def test_moe_active_params_are_a_fraction_of_total():
    mixtral = models.resolve("mixtral-8x7b")
    # Mixtral's card: 46.7B total, 12.9B active per token
    assert mixtral.active_params() / 1e9 == pytest.approx(12.9, rel=0.01)


def test_catalog_names_are_case_insensitive_and_hub_ids_resolve():
    assert models.resolve("llama-3.1-8b").name == "Llama-3.1-8B"
    assert models.resolve("meta-llama/Llama-3.1-8B").name == "Llama-3.1-8B"


def test_unknown_name_suggests_close_matches():
    with pytest.raises(ModelError) as e:
        models.resolve("Lama-3.1-8B")
    assert "did you mean" in str(e.value) and "Llama-3.1-8B" in str(e.value)


def _write(tmp_path, cfg, name="m"):
    d = tmp_path / name
    d.mkdir()
    (d / "config.json").write_text(json.dumps(cfg))
    return d


def test_local_llama_config_dir_and_file(tmp_path):
    cfg = {"model_type": "llama", "hidden_size": 4096, "num_hidden_layers": 32, "num_attention_heads": 32,
           "num_key_value_heads": 8, "intermediate_size": 14336, "vocab_size": 128256, "tie_word_embeddings": False}
    d = _write(tmp_path, cfg)
    assert models.resolve(str(d)).total_params() == 8_030_261_248
    assert models.resolve(str(d / "config.json")).total_params() == 8_030_261_248


def test_local_moe_and_nested_text_config(tmp_path):
    moe = {"model_type": "qwen3_moe", "hidden_size": 2048, "num_hidden_layers": 48, "num_attention_heads": 32,
           "num_key_value_heads": 4, "head_dim": 128, "intermediate_size": 6144, "moe_intermediate_size": 768,
           "num_experts": 128, "num_experts_per_tok": 8, "vocab_size": 151936, "tie_word_embeddings": False}
    spec = models.resolve(str(_write(tmp_path, moe, "moe")))
    assert spec.is_moe and spec.total_params() == 30_532_122_624
    text = {"model_type": "gemma3_text", "hidden_size": 1152, "num_hidden_layers": 26, "num_attention_heads": 4,
            "num_key_value_heads": 1, "head_dim": 256, "intermediate_size": 6912, "vocab_size": 262144}
    assert models.resolve(str(_write(tmp_path, text, "g3text"))).total_params() == 999_885_952
    # the multimodal class holds a vision tower the text shapes leave out: refused, never undercounted
    with pytest.raises(ModelError, match="multimodal"):
        models.resolve(str(_write(tmp_path, {"model_type": "gemma3", "text_config": text}, "g3")))


def test_gpt_neox_and_falcon_configs(tmp_path):
    neox = {"model_type": "gpt_neox", "hidden_size": 2048, "num_hidden_layers": 16, "num_attention_heads": 8,
            "intermediate_size": 8192, "vocab_size": 50304, "tie_word_embeddings": False}
    assert models.resolve(str(_write(tmp_path, neox, "neox"))).total_params() == 1_011_781_632
    falcon = {"model_type": "falcon", "hidden_size": 4544, "num_hidden_layers": 32, "num_attention_heads": 71,
              "multi_query": True, "parallel_attn": True, "bias": False, "vocab_size": 65024}
    assert models.resolve(str(_write(tmp_path, falcon, "falcon"))).total_params() == 6_921_720_704


def test_malformed_and_incomplete_configs_are_one_line_errors(tmp_path):
    d = tmp_path / "bad"
    d.mkdir()
    (d / "config.json").write_text("{not json")
    with pytest.raises(ModelError, match="malformed config.json"):
        models.resolve(str(d))
    with pytest.raises(ModelError, match="lacks"):
        models.resolve(str(_write(tmp_path, {"model_type": "llama", "hidden_size": 8}, "partial")))


_LFM2 = {"model_type": "lfm2", "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "vocab_size": 100,
         "full_attn_idxs": [1]}
_MLA = {"model_type": "deepseek_v2", "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "vocab_size": 100,
        "kv_lora_rank": 16, "n_routed_experts": 4, "n_shared_experts": 1, "first_k_dense_replace": 1}


@pytest.mark.parametrize("cfg,field", [
    ({**_LFM2, "layer_types": [["conv"], ["full_attention"]]}, "layer_types"),
    ({**_LFM2, "layer_types": "conv"}, "layer_types"),
    ({**_LFM2, "full_attn_idxs": [1.5]}, "full_attn_idxs"),
    ({**_LFM2, "block_ffn_dim_multiplier": "x"}, "block_ffn_dim_multiplier"),
    ({**_LFM2, "layer_types": ["conv"]}, "layer_types"),
    ({**_LFM2, "conv_L_cache": 0}, "conv_L_cache"),
    ({**_MLA, "kv_lora_rank": -1}, "kv_lora_rank"),
    ({**_MLA, "qk_rope_head_dim": "64"}, "qk_rope_head_dim"),
    ({**_MLA, "n_shared_experts": 2.5}, "n_shared_experts"),
    ({**_MLA, "first_k_dense_replace": -1}, "first_k_dense_replace"),
], ids=lambda v: v if isinstance(v, str) else "")
def test_a_hybrid_or_latent_attention_configs_bad_field_is_named_in_one_line(cfg, field):
    with pytest.raises(ModelError, match=field) as e:
        models.spec_from_config(cfg, "bad")
    assert "\n" not in str(e.value)


def test_bare_size_gives_a_llama_shaped_model_of_that_size():
    for size, target in (("7B", 7e9), ("70b", 70e9), ("500M", 5e8)):
        spec = models.resolve(size)
        assert spec.family == "llama"
        assert abs(spec.total_params() - target) / target < 0.1
    with pytest.raises(ModelError):
        models.resolve("0.001B")


def test_hub_id_offline_suggests_a_local_path(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelError) as e:
        models.resolve("some-org/some-model")
    assert "offline" in str(e.value) and "local path" in str(e.value)


def test_targets_attention_names_each_architectures_projections():
    assert models.resolve("Pythia-1B").target_modules("attention") == ["query_key_value", "dense"]
    assert models.resolve("Phi-3-mini-4k").target_modules("attention") == ["qkv_proj", "o_proj"]
    assert models.resolve("Llama-3.1-8B").target_modules("all-linear")[-1] == "down_proj"
    with pytest.raises(ModelError, match="no linear layer"):
        models.resolve("Llama-3.1-8B").target_modules("q_proj,query_key_value")


def test_a_shared_expert_counts_as_transformers_builds_and_peft_adapts_it(tmp_path):
    """Qwen2-MoE's shared expert: a gated dense MLP beside the routed experts, whose layers are
    nn.Linear (quantized under QLoRA, adapted by all-linear LoRA) and whose width need not be
    the config's intermediate_size."""
    cfg = {"architectures": ["Qwen2MoeForCausalLM"], "model_type": "qwen2_moe", "hidden_size": 256, "intermediate_size": 512,
           "moe_intermediate_size": 64, "shared_expert_intermediate_size": 768, "num_hidden_layers": 2,
           "num_attention_heads": 8, "num_key_value_heads": 2, "num_experts": 8, "num_experts_per_tok": 2, "vocab_size": 1000}
    path = tmp_path / "config.json"
    path.write_text(json.dumps(cfg))
    spec = models.spec_from_config(cfg, "qwen2-moe-small", str(tmp_path))
    assert spec.shared_intermediate_size == 768
    assert spec.module_shape("down_proj")[:2] == (768, 256) and spec.module_shape("shared_expert_gate")[:2] == (256, 1)
    assert "shared_expert_gate" in spec.target_modules("all-linear")
    dense = models.spec_from_config({**cfg, "shared_expert_intermediate_size": 0}, "no-shared", str(tmp_path))
    assert spec.total_params() - dense.total_params() == 2 * (3 * 256 * 768 + 256)
    assert spec.quantized_params() - dense.quantized_params() == 2 * (3 * 256 * 768 + 256)  # nn.Linear: 4-bit under QLoRA
    plan = Plan(model=str(path), method="lora")
    assert memory.layer_activation_bytes_per_token(spec, plan) > memory.layer_activation_bytes_per_token(dense, plan)
    deepseek = {**cfg, "model_type": "deepseek_v2", "n_shared_experts": 2}
    with pytest.raises(ModelError, match="shared experts"):
        models.resolve(str(_write(tmp_path, deepseek, "deepseek")))
