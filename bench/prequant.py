"""A random-init checkpoint saved already quantized to 4 bits (NF4, double quantization), for
QLoRA runs of models whose bf16 checkpoint would not fit the device's disk (a 32B model is
65 GB in bf16, 20 GB in NF4; the H200 machine has 64 GiB of disk).

The files are what transformers writes for a bitsandbytes 4-bit model (`save_pretrained`):
each quantized linear weight as packed uint8 plus bitsandbytes' `QuantState.as_dict(packed=True)`
entries beside it, and `quantization_config` in config.json. Our script's `from_pretrained` with
its own BitsAndBytesConfig loads it as it would load a published pre-quantized checkpoint; the
memory of training is the same as quantizing a bf16 checkpoint on load.

Tensors are made one at a time (on the GPU when there is one), so a 32B model needs neither
65 GB of host RAM nor of disk."""

from __future__ import annotations

import json
from pathlib import Path

SHARD_BYTES = 4 * 2**30


def quantization_config() -> dict:
    """The settings our scripts load QLoRA models with (templates/train.py.j2)."""
    import torch
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                              bnb_4bit_compute_dtype=torch.bfloat16).to_dict()


def quantized_linears(model) -> set[str]:
    """Weights transformers quantizes: every nn.Linear but the output head (and tied modules)."""
    import torch

    skip = {"lm_head"}
    return {f"{name}.weight" for name, mod in model.named_modules()
            if isinstance(mod, torch.nn.Linear) and name.split(".")[-1] not in skip}


def tensors(model, device: str, std: float = 0.02):
    """(name, tensor) for the checkpoint: NF4 entries for linear weights, bf16 for the rest."""
    import bitsandbytes.functional as bnbf
    import torch

    quantized = quantized_linears(model)
    tied = {"lm_head.weight"} if model.config.tie_word_embeddings else set()
    gen = torch.Generator(device=device).manual_seed(0)
    for name, p in model.state_dict().items():
        if name in tied:
            continue
        if name.endswith("norm.weight") or name.endswith("layernorm.weight"):
            yield name, torch.ones(p.shape, dtype=torch.bfloat16)
            continue
        w = torch.randn(p.shape, generator=gen, device=device, dtype=torch.float32).mul_(std).to(torch.bfloat16)
        if name in quantized:
            packed, state = bnbf.quantize_4bit(w, blocksize=64, compress_statistics=True, quant_type="nf4")
            yield name, packed.cpu()
            for key, value in state.as_dict(packed=True).items():
                yield f"{name}.{key}", value.cpu()
        else:
            yield name, w.cpu()


def build(config, out: Path, device: str = "cuda") -> Path:
    """Write config.json (with quantization_config) and sharded safetensors to `out`."""
    import torch
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM

    out.mkdir(parents=True, exist_ok=True)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    shard, size, shards, weight_map = {}, 0, [], {}

    def flush():
        nonlocal shard, size
        if shard:
            name = f"model-{len(shards) + 1:05d}.safetensors"
            save_file(shard, str(out / name), metadata={"format": "pt"})
            shards.append(name)
            weight_map.update({k: name for k in shard})
            shard, size = {}, 0

    total = 0
    for name, t in tensors(model, device):
        shard[name] = t.contiguous()
        size += t.numel() * t.element_size()
        total += t.numel() * t.element_size()
        if size >= SHARD_BYTES:
            flush()
    flush()
    (out / "model.safetensors.index.json").write_text(json.dumps({"metadata": {"total_size": total},
                                                                 "weight_map": weight_map}, indent=1))
    cfg = config.to_dict()
    cfg["quantization_config"] = quantization_config()
    cfg["dtype"] = "bfloat16"
    (out / "config.json").write_text(json.dumps(cfg, indent=1))
    return out
