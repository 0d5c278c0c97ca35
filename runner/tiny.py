"""Build models and tokenizers locally, from architecture configs with random weights: for
the demo, the tests and the GPU benchmarks. No download: memory and speed are the same as
with real weights (docs/guides.md (measurements made before the catalog))."""

from __future__ import annotations

import json
from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent / "data"
SPECIAL = ["<pad>", "<unk>", "<s>", "</s>", "<|im_start|>", "<|im_end|>"]
# ChatML, the format our shipped chat data and templates use.
CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def corpus() -> list[str]:
    texts = []
    for name in ("instructions.jsonl", "preferences.jsonl"):
        for line in (DATA_DIR / name).read_text().splitlines():
            texts += [str(v) for v in json.loads(line).values()]
    return texts


def build_tokenizer(out_dir: Path, vocab_size: int = 512):
    """A byte-level BPE tokenizer trained on our shipped data, with a ChatML template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    extra = ["Below is an instruction that describes a task. Write a response that appropriately completes the request.",
             "### Instruction:", "### Input:", "### Response:", "user assistant system"]
    tok.train_from_iterator(corpus() + extra, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                                   pad_token="<pad>")
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(out_dir)
    return fast


def llama_config(vocab_size: int, hidden: int = 64, layers: int = 2, heads: int = 4, kv_heads: int = 2,
                 intermediate: int = 128, max_positions: int = 2048):
    from transformers import LlamaConfig

    return LlamaConfig(vocab_size=vocab_size, hidden_size=hidden, intermediate_size=intermediate,
                       num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=kv_heads,
                       max_position_embeddings=max_positions, tie_word_embeddings=False,
                       bos_token_id=2, eos_token_id=3, pad_token_id=0)


def build_model(out_dir: Path, config, dtype: str = "float32", device: str = "cpu", seed: int = 0) -> Path:
    """Random-init model from `config`, saved with safetensors to `out_dir`."""
    import torch
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=getattr(torch, dtype))
    model.save_pretrained(out_dir)
    return Path(out_dir)


def build_tiny(out_dir: Path, **shape) -> Path:
    """The demo model: a 2-layer Llama with our tokenizer (a few hundred thousand params)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tok = build_tokenizer(out_dir)
    build_model(out_dir, llama_config(len(tok), **shape))
    return out_dir
