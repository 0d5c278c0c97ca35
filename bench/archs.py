"""Catalog models (and config files) as Hugging Face configs, for random-init checkpoints on the GPU."""

from pathlib import Path

from planner.models import ModelSpec

MODEL_TYPE = {"llama": "llama", "mistral": "mistral", "qwen2": "qwen2", "qwen3": "qwen3", "phi3": "phi3",
              "gpt_neox": "gpt_neox"}


def hf_config(spec: ModelSpec):
    from transformers import AutoConfig

    if spec.path and (Path(spec.path) / "config.json").is_file():  # a config file: as published, with our tokenizer's ids
        return AutoConfig.from_pretrained(spec.path, num_hidden_layers=spec.num_layers, bos_token_id=2, eos_token_id=3,
                                          pad_token_id=0)
    if spec.family == "falcon":
        return AutoConfig.for_model(
            "falcon", hidden_size=spec.hidden_size, num_hidden_layers=spec.num_layers, num_attention_heads=spec.num_heads,
            vocab_size=spec.vocab_size, multi_query=spec.num_kv_heads == 1, parallel_attn=spec.norms_per_layer == 1,
            new_decoder_architecture=False, bias=spec.qkv_bias, tie_word_embeddings=spec.tied_embeddings,
            bos_token_id=2, eos_token_id=3, pad_token_id=0)
    if spec.family == "gemma":
        model_type = "gemma3_text" if spec.qk_norm else "gemma2"
    else:
        model_type = MODEL_TYPE[spec.family]
    kw = dict(hidden_size=spec.hidden_size, num_hidden_layers=spec.num_layers, num_attention_heads=spec.num_heads,
              intermediate_size=spec.intermediate_size, vocab_size=spec.vocab_size,
              tie_word_embeddings=spec.tied_embeddings, max_position_embeddings=16384,
              bos_token_id=2, eos_token_id=3, pad_token_id=0)
    if model_type != "gpt_neox":
        kw.update(num_key_value_heads=spec.num_kv_heads, head_dim=spec.head_dim)
    if model_type == "mistral":
        # MistralConfig defaults to a 4,096-token window; Mistral-7B-v0.3's published config
        # has none (a window makes sdpa take an explicit mask from 4,096 tokens on)
        kw["sliding_window"] = None
    return AutoConfig.for_model(model_type, **kw)
