"""The pre-quantized random checkpoint (bench/prequant.py) is what transformers itself saves
for a bitsandbytes 4-bit model, and our scripts' loading settings read it back as 4-bit layers."""

import json

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("bitsandbytes")

from safetensors import safe_open  # noqa: E402
from transformers import AutoConfig, AutoModelForCausalLM, BitsAndBytesConfig  # noqa: E402

from bench import prequant  # noqa: E402


def _config(tied=False):
    return AutoConfig.for_model("qwen2", hidden_size=128, num_hidden_layers=2, num_attention_heads=4,
                                num_key_value_heads=2, intermediate_size=256, vocab_size=512,
                                tie_word_embeddings=tied)


def _entries(directory):
    files = sorted(directory.glob("*.safetensors"))
    out = {}
    for fn in files:
        with safe_open(str(fn), "pt") as f:
            for k in f.keys():
                out[k] = (tuple(f.get_slice(k).get_shape()), f.get_slice(k).get_dtype())
    return out


def _bnb():
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                              bnb_4bit_compute_dtype=torch.bfloat16)


def test_same_entries_as_transformers_own_4bit_save(tmp_path):
    AutoModelForCausalLM.from_config(_config(), dtype=torch.bfloat16).save_pretrained(tmp_path / "bf16")
    AutoModelForCausalLM.from_pretrained(tmp_path / "bf16", quantization_config=_bnb(),
                                         device_map={"": "cpu"}).save_pretrained(tmp_path / "ref")
    prequant.build(_config(), tmp_path / "mine", device="cpu")
    ref, mine = _entries(tmp_path / "ref"), _entries(tmp_path / "mine")
    assert set(ref) == set(mine)
    # the packed QuantState is a JSON blob whose length varies with the numbers in it
    assert {k: v for k, v in ref.items() if "quant_state." not in k} == \
        {k: v for k, v in mine.items() if "quant_state." not in k}
    index = json.loads((tmp_path / "mine" / "model.safetensors.index.json").read_text())
    assert set(index["weight_map"]) == set(mine)


def test_loads_as_4bit_layers_and_runs(tmp_path):
    prequant.build(_config(tied=True), tmp_path / "m", device="cpu")
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "m", quantization_config=_bnb(), device_map={"": "cpu"})
    layer = model.model.layers[0]
    assert type(layer.mlp.up_proj).__name__ == "Linear4bit"
    assert type(model.lm_head).__name__ == "Linear"
    assert torch.equal(layer.input_layernorm.weight, torch.ones(128, dtype=torch.bfloat16))
    logits = model(torch.tensor([[1, 2, 3, 4]])).logits
    assert logits.shape == (1, 4, 512) and torch.isfinite(logits).all() and logits.float().std() > 0
