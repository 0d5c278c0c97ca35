"""Plans measured on the H100 (bench/memory.py). Each dict: a catalog model, a data format
(for SFT), and Plan fields."""

SMALL = [
    dict(model="Qwen2.5-0.5B", method="full", batch=4, seq_len=1024),
    dict(model="Qwen2.5-0.5B", method="full", precision="mixed", batch=4, seq_len=1024),
    dict(model="Qwen2.5-0.5B", method="lora", batch=8, seq_len=2048),
    dict(model="Qwen2.5-0.5B", method="lora", batch=8, seq_len=2048, grad_ckpt=True),
    dict(model="Qwen2.5-0.5B", method="dora", batch=4, seq_len=1024),
    dict(model="Qwen2.5-0.5B", method="prefix", batch=4, seq_len=1024),
    dict(model="Qwen2.5-0.5B", method="ia3", batch=4, seq_len=1024),
    dict(model="Qwen2.5-0.5B", method="lora", task="dpo", batch=2, seq_len=1024),
    dict(model="Qwen2.5-0.5B", method="full", task="dpo", batch=2, seq_len=1024),
    dict(model="Llama-3.2-1B", method="lora", batch=4, seq_len=2048),
    dict(model="Llama-3.2-1B", method="lora", batch=4, seq_len=2048, loss="chunked"),
    dict(model="Llama-3.2-1B", method="full", batch=4, seq_len=2048, grad_ckpt=True),
    dict(model="Llama-3.2-1B", method="qlora", batch=8, seq_len=2048),
    dict(model="Llama-3.2-1B", method="lora", targets="attention", optim="adamw_8bit", batch=4, seq_len=2048),
    dict(model="Llama-3.2-1B", method="full", optim="paged_adamw_8bit", batch=2, seq_len=4096, grad_ckpt=True),
    dict(model="Llama-3.2-1B", method="lora", batch=1, seq_len=8192, grad_ckpt=True),
    dict(model="Llama-3.2-1B", method="dora", task="dpo", batch=2, seq_len=1024),
    dict(model="Llama-3.2-1B", method="lora", format="messages", batch=4, seq_len=2048, dropout=0.05),
    dict(model="Qwen3-0.6B", method="lora", batch=16, seq_len=512),
    dict(model="Gemma-3-1B", method="lora", batch=4, seq_len=1024),
    dict(model="Pythia-1B", method="lora", batch=4, seq_len=2048),
    dict(model="Pythia-1B", method="full", batch=2, seq_len=2048),
    dict(model="Phi-3-mini-4k", method="lora", batch=2, seq_len=2048, grad_ckpt=True),
    dict(model="Qwen2.5-1.5B", method="lora", batch=4, seq_len=2048, dropout=0.05),
    dict(model="Qwen2.5-1.5B", method="qlora", batch=4, seq_len=4096, grad_ckpt=True, optim="paged_adamw_8bit"),
    dict(model="Qwen2.5-0.5B", method="full", optim="adamw_8bit", batch=8, seq_len=512),
    dict(model="Qwen2.5-0.5B", method="lora", loss="fused", batch=8, seq_len=2048),
    dict(model="Llama-3.2-1B", method="lora", batch=16, seq_len=1024),
    dict(model="Llama-3.2-1B", method="qlora", task="dpo", batch=2, seq_len=1024),
    dict(model="Qwen3-0.6B", method="lora", task="dpo", batch=4, seq_len=512, loss="chunked"),
    dict(model="Pythia-1B", method="lora", loss="chunked", batch=8, seq_len=1024),
    dict(model="Gemma-3-1B", method="full", batch=2, seq_len=2048, grad_ckpt=True),
    dict(model="Gemma-2-2B", method="lora", batch=4, seq_len=2048),
]

LARGE = [
    dict(model="Llama-3.1-8B", method="lora", batch=4, seq_len=2048, grad_ckpt=True, dropout=0.05),
    dict(model="Llama-3.1-8B", method="qlora", batch=4, seq_len=2048, grad_ckpt=True, dropout=0.05),
    dict(model="Llama-3.1-8B", method="lora", batch=1, seq_len=2048),
    dict(model="Llama-3.1-8B", method="full", batch=1, seq_len=2048, grad_ckpt=True),
    dict(model="Llama-3.1-8B", method="full", precision="mixed", batch=1, seq_len=2048, grad_ckpt=True),
    dict(model="Llama-3.1-8B", method="lora", batch=16, seq_len=8192),
    dict(model="Llama-3.1-8B", method="qlora", batch=4, seq_len=2048, optim="paged_adamw_8bit", loss="chunked", grad_ckpt=True),
    dict(model="Llama-3.1-8B", method="lora", task="dpo", batch=2, seq_len=2048, grad_ckpt=True),
    dict(model="Llama-3.1-8B", method="full", batch=4, seq_len=4096),
    dict(model="Llama-3.1-8B", method="ia3", batch=4, seq_len=2048, grad_ckpt=True),
    dict(model="Llama-3.1-8B", method="dora", batch=2, seq_len=2048, grad_ckpt=True),
    dict(model="Llama-3.1-8B", method="lora", loss="fused", batch=8, seq_len=2048, grad_ckpt=True),
    dict(model="Mistral-7B-v0.3", method="lora", batch=4, seq_len=4096, grad_ckpt=True),
    dict(model="Mistral-7B-v0.3", method="qlora", batch=8, seq_len=2048, grad_ckpt=True),
    dict(model="Mistral-7B-v0.3", method="lora", batch=8, seq_len=8192),
    dict(model="Llama-3.2-3B", method="lora", batch=8, seq_len=2048),
    dict(model="Qwen3-4B", method="qlora", batch=4, seq_len=4096, grad_ckpt=True),
]

# The runs a first pass (SMALL, then LARGE, each with --budget-s 490-500) did not reach.
REST = SMALL[16:] + LARGE[13:]

# Speed (bench/results/speed-h100.jsonl): each target plan of issue 6 at the planner's choice
# for 80 GB ("best": batch from the estimate, checkpointing off, dropout 0, no adapter input
# cast, compiled layers), then one lever switched at a time; the ratio best / lever is the lever's worth.
_L8 = dict(model="Llama-3.1-8B", seq_len=2048)
_L1 = dict(model="Llama-3.2-1B", seq_len=2048)
SPEED_8B_LORA = [
    dict(_L8, label="8b-lora:best", method="lora", batch=4),
    dict(_L8, label="8b-lora:no-compile", method="lora", batch=4, compile=False),
    dict(_L8, label="8b-lora:cast-inputs", method="lora", batch=4, cast_adapter_inputs=True),
    dict(_L8, label="8b-lora:dropout-0.05", method="lora", batch=4, dropout=0.05),
    dict(_L8, label="8b-lora:grad-ckpt", method="lora", batch=4, grad_ckpt=True),
    dict(_L8, label="8b-lora:batch-2", method="lora", batch=2),
    dict(_L8, label="8b-lora:fused-loss", method="lora", batch=4, loss="fused"),
    dict(_L8, label="8b-lora:old-defaults", method="lora", batch=4, grad_ckpt=True, dropout=0.05, compile=False,
         cast_adapter_inputs=True),
]
SPEED_REST = [
    dict(_L1, label="1b-full:best", method="full", batch=8),
    dict(_L1, label="1b-full:no-compile", method="full", batch=8, compile=False),
    dict(_L1, label="1b-full:grad-ckpt", method="full", batch=8, grad_ckpt=True),
    dict(_L1, label="1b-full:fused-loss-b16", method="full", batch=16, loss="fused"),
    dict(_L1, label="1b-full:adamw-8bit", method="full", batch=8, optim="adamw_8bit"),
    dict(_L1, label="1b-full:batch-4", method="full", batch=4),
    dict(_L8, label="8b-qlora:best", method="qlora", batch=4),
    dict(_L8, label="8b-qlora:no-compile", method="qlora", batch=4, compile=False),
    dict(_L8, label="8b-qlora:grad-ckpt", method="qlora", batch=4, grad_ckpt=True),
    dict(_L8, label="8b-dpo-lora:best", method="lora", task="dpo", batch=2),
    dict(_L8, label="8b-dpo-lora:no-compile", method="lora", task="dpo", batch=2, compile=False),
]

# The first matrix ran with PEFT's input cast on and without compilation; these plans run
# again with the scripts' defaults now (compiled layers, no cast), plus the unrun tail.
COMPILED = [
    dict(model="Qwen2.5-0.5B", method="lora", batch=8, seq_len=2048),
    dict(model="Gemma-3-1B", method="lora", batch=4, seq_len=1024),
    dict(model="Pythia-1B", method="lora", batch=4, seq_len=2048),
    dict(model="Phi-3-mini-4k", method="lora", batch=2, seq_len=2048, grad_ckpt=True),
    dict(model="Qwen2.5-1.5B", method="qlora", batch=4, seq_len=4096, grad_ckpt=True, optim="paged_adamw_8bit"),
    dict(model="Qwen3-0.6B", method="lora", task="dpo", batch=4, seq_len=512, loss="chunked"),
    dict(model="Gemma-2-2B", method="lora", batch=4, seq_len=2048),
    dict(model="Mistral-7B-v0.3", method="lora", batch=8, seq_len=8192),
]

# Engines at world size 1 on the H100 (bench/results/memory-h100-engines.jsonl): DeepSpeed
# ZeRO-2 and ZeRO-3 with optimizer offload, FSDP2; LoRA and full fine-tuning. Offload and the
# engines' own buffers are real at one GPU.
ENGINES = [
    dict(model="Llama-3.2-1B", method="lora", batch=4, seq_len=2048, zero=2),
    dict(model="Llama-3.2-1B", method="full", batch=4, seq_len=2048, zero=2),
    dict(model="Llama-3.2-1B", method="lora", batch=4, seq_len=2048, zero=3, offload="optimizer"),
    dict(model="Llama-3.2-1B", method="full", batch=4, seq_len=2048, zero=3, offload="optimizer"),
    dict(model="Llama-3.2-1B", method="lora", batch=4, seq_len=2048, engine="fsdp"),
    dict(model="Llama-3.2-1B", method="full", batch=4, seq_len=2048, engine="fsdp"),
    dict(model="Llama-3.2-1B", method="full", batch=4, seq_len=2048, engine="fsdp", offload="all"),
]

# 2026-11-23, H100: the ZeRO-3 LoRA offload run again (after the fix that keeps PEFT's cast under ZeRO-3), and the tail of COMPILED.
RETRY = [ENGINES[2]] + COMPILED[6:]

# DPO through the engines (the reference pass reaches the PeftModel inside the wrapper).
ENGINES_DPO = [
    dict(model="Llama-3.2-1B", method="lora", task="dpo", batch=2, seq_len=2048, zero=2),
    dict(model="Llama-3.2-1B", method="lora", task="dpo", batch=2, seq_len=2048, engine="fsdp"),
]


def committed(*rows: int, file: str = "memory-h100.jsonl") -> list[dict]:
    """Cases that repeat committed runs exactly: each row's plan fields that differ from
    today's Plan defaults (so eager, input-cast runs of the first matrix stay so)."""
    import json
    from dataclasses import fields
    from pathlib import Path

    from planner.plan import Plan

    defaults = {f.name: f.default for f in fields(Plan)}
    lines = (Path(__file__).resolve().parent / "results" / file).read_text().splitlines()
    out = []
    for i in rows:
        r = json.loads(lines[i])
        plan = {k: v for k, v in r["plan"].items()
                if k not in ("max_steps", "save_final", "eval_fraction", "logging_steps", "save_steps", "gpu")
                and defaults.get(k) != v}
        out.append(dict(plan, model=r["model"], format=r["format"]))
    return out


def _retime(rows, file="memory-h100.jsonl", prefix="row"):
    """committed() rows labelled as the ten-step re-timing of row N of `file`."""
    return [dict(c, label=f"retime:{prefix}{i}") for i, c in zip(rows, committed(*rows, file=file))]


# 2026-11-23, allocator history (--trace): the first-matrix runs whose reserved memory exceeds
# allocated by a whole fp32 logits block (rows 3, 5, 11, 14), one where it is half a block
# (row 9), and Pythia-1B, whose allocated peak the census misses (row 33).
TRACE = committed(3, 5, 9, 11, 14, 33)

# 2026-11-23, speed: the first-matrix runs timed over only three steps whose step time the
# model missed by more than 12%, timed again over ten (--steps 14 --warmup 4), same plans.
RETIME = _retime((0, 1, 4, 6, 8, 10, 27, 28, 32, 35, 38, 40, 42))

# 2026-11-23, the packing lever: answers of varied length, packed into full blocks (the
# scripts' default, fast with sdpa) against one example a row padded to the batch's longest.
PACKING = [
    dict(_L8, label="8b-lora:packed-varied", method="lora", batch=4, lengths="varied"),
    dict(_L8, label="8b-lora:padded-varied", method="lora", batch=4, lengths="varied", packing=False),
]

# 2026-11-23, the 30B-class QLoRA on the H200 (141 GB): NF4 checkpoint built directly
# (bench/prequant.py; bf16 files would not fit the machine's disk).
# Batch 2 is what the search (planner/search.py) picks for the H200; batch 4 is estimated at 153 GiB
# (out of memory on 140 GB); batch 8 with checkpointing at 64 GiB.
_Q32 = dict(model="Qwen2.5-32B", method="qlora", seq_len=2048, checkpoint="nf4", gpu="H200")
QLORA_30B = [dict(_Q32, batch=2), dict(_Q32, batch=4), dict(_Q32, batch=8, grad_ckpt=True)]

# 2026-11-23, H100: the same traces with the large pool's peak told apart from the
# small pool's; and the Mistral s4096 run again with the published config's attention (no
# sliding window: the first matrix built it with MistralConfig's default 4,096-token window).
TRACE_POOLS = committed(3, 5, 9, 11)
MISTRAL_NO_WINDOW = [dict(committed(28)[0], label="retime:row28-no-window")]

# 2026-11-23, H100: the remaining three-step runs the refitted model misses by more than
# 15% and that had no ten-step twin yet.
RETIME_REST = _retime((29,)) + _retime((3, 5), file="memory-h100-compiled.jsonl", prefix="compiled-row")

# 2026-11-24, H100, speed: every other timed run of the two three-step matrices, timed again over ten
# steps (--steps 14 --warmup 4), same plans, so that every committed plan has a ten-step timing
# and none is picked for how far the model missed it. Three calls, each model built once.
RETIME_ALL_A = _retime((16, 17, 18, 19, 22, 23, 25, 26, 9, 11))
RETIME_ALL_B = _retime((12, 13, 14, 15, 30, 41, 2, 3, 5, 7, 39, 31, 33))
RETIME_ALL_C = _retime((34, 36, 37)) + _retime((0, 1, 2, 4, 6), file="memory-h100-compiled.jsonl", prefix="compiled-row")

# 2026-11-24, H100, the allocator: first-matrix runs whose reserved memory exceeds allocated by a
# whole fp32 logits block (rows 3, 5, 14, 11, 26) and by half of one (9, 15, 37), traced with
# the large pool's whole history kept (--events-dir) to replay it offline.
EVENTS = [dict(c, label=f"events:row{i}") for i, c in zip((3, 5, 14, 11, 9, 15, 37, 26),
                                                         committed(3, 5, 14, 11, 9, 15, 37, 26))]

# 2026-12-01, H200: a family the calibration never measured (Falcon-7B, with the scripts that
# now find its decoder layers), a Mixtral-shaped mixture of experts written as a config file
# (bench/configs/mixtral-2b: 8 experts, top 2) with LoRA and QLoRA, and fp16 (cards without
# bf16) on two measured families.
FAMILIES_H200 = [dict(c, gpu="H200") for c in (
    dict(model="Falcon-7B", method="lora", batch=4, seq_len=2048),
    dict(model="Falcon-7B", method="full", batch=4, seq_len=2048, grad_ckpt=True),
    dict(model="bench/configs/mixtral-2b", method="lora", batch=4, seq_len=2048),
    dict(model="bench/configs/mixtral-2b", method="qlora", batch=4, seq_len=2048),
    dict(model="Llama-3.2-1B", method="lora", precision="fp16", batch=4, seq_len=2048),
    dict(model="Qwen2.5-0.5B", method="full", precision="fp16", batch=4, seq_len=1024),
)]

# 2026-12-01, H200: packing that keeps examples apart (positions restart at each example; no
# token attends to another) against the old packing (--packing-attends-across) and padded rows,
# on answers of varied length; and the full-length speed plans (a block is one example there).
_PACK8 = dict(_L8, method="lora", batch=4, gpu="H200")
_PACK1 = dict(_L1, method="full", batch=8, gpu="H200")
PACKING_H200_8B = [
    dict(_PACK8, label="8b-lora:best"),
    dict(_PACK8, label="8b-lora:packed-varied", lengths="varied"),
    dict(_PACK8, label="8b-lora:packed-across-varied", lengths="varied", packing_attends_across=True),
    dict(_PACK8, label="8b-lora:padded-varied", lengths="varied", packing=False),
]
PACKING_H200_1B = [
    dict(_PACK1, label="1b-full:best"),
    dict(_PACK1, label="1b-full:packed-varied", lengths="varied"),
    dict(_PACK1, label="1b-full:packed-across-varied", lengths="varied", packing_attends_across=True),
    dict(_PACK1, label="1b-full:padded-varied", lengths="varied", packing=False),
]

# 2026-12-02, H200: the same packed plans with FlexAttention (transformers turns the restarting
# positions into a document block mask) against sdpa's explicit block-diagonal mask above; and
# the 1B padded run the first call had no time for.
PACKING_FLEX_H200 = [
    dict(_PACK8, label="8b-lora:packed-varied-flex", lengths="varied", attn="flex_attention"),
    dict(_PACK1, label="1b-full:packed-varied-flex", lengths="varied", attn="flex_attention"),
    dict(_PACK1, label="1b-full:padded-varied", lengths="varied", packing=False),
]

# 2026-12-02, H200: TRL 1.16 as ftplan renders it (--trainer trl: SFTTrainer/DPOTrainer with our
# settings), five families; SFT and DPO; LoRA, QLoRA and full; with and without checkpointing and
# packing. The 8B LoRA and 1B full plans are the speed plans of our own loop (PACKING_H200_*).
_TRL = dict(trainer="trl", loss="chunked", gpu="H200")
TRL_H200 = [dict(_TRL, **c) for c in (
    dict(model="Llama-3.1-8B", method="lora", batch=4, seq_len=2048, label="trl:8b-lora"),
    dict(model="Llama-3.2-1B", method="full", batch=8, seq_len=2048, label="trl:1b-full"),
    dict(model="Llama-3.2-1B", method="lora", task="dpo", batch=4, seq_len=1024),
    dict(model="Qwen2.5-0.5B", method="qlora", batch=8, seq_len=1024),
    dict(model="Qwen2.5-0.5B", method="lora", batch=8, seq_len=2048, grad_ckpt=True),
    dict(model="Qwen3-0.6B", method="lora", batch=4, seq_len=2048, packing=False),
    dict(model="Gemma-3-1B", method="lora", batch=4, seq_len=1024),
    dict(model="Pythia-1B", method="lora", batch=4, seq_len=2048),
    dict(model="Qwen2.5-0.5B", method="full", task="dpo", batch=2, seq_len=1024),
    dict(model="Phi-3-mini-4k", method="lora", batch=2, seq_len=2048),
)]
# the rest of TRL_H200 (the first call's budget ran out after five), and the two plans whose TRL
# runs were furthest from the estimate, run with ftplan's own loop for comparison
TRL_H200_2 = [dict(_TRL, **c) for c in (
    dict(model="Qwen3-0.6B", method="lora", batch=4, seq_len=2048, packing=False),
    dict(model="Gemma-3-1B", method="lora", batch=4, seq_len=1024),
    dict(model="Pythia-1B", method="lora", batch=4, seq_len=2048),
    dict(model="Phi-3-mini-4k", method="lora", batch=2, seq_len=2048),
)] + [
    dict(model="Qwen2.5-0.5B", method="lora", batch=8, seq_len=2048, grad_ckpt=True, gpu="H200", label="ftplan:compare"),
    dict(model="Qwen2.5-0.5B", method="qlora", batch=8, seq_len=1024, gpu="H200", label="ftplan:compare"),
]
# the TRL run with checkpointing above its estimate: the same plan with ftplan's loop and the
# chunked loss (its peak moves into backward, as TRL's does), and under TRL without compilation
CKPT_FLEX_H200 = [
    dict(model="Qwen2.5-0.5B", method="lora", batch=8, seq_len=2048, grad_ckpt=True, loss="chunked", gpu="H200",
         label="ftplan:ckpt-chunked"),
    dict(_TRL, model="Qwen2.5-0.5B", method="lora", batch=8, seq_len=2048, grad_ckpt=True, compile=False,
         label="trl:ckpt-eager"),
]

# Side by side on one plan, in one call: ftplan's loop, TRL with ftplan's settings, and TRL with
# its own defaults (checkpointing on, no compilation, PEFT's input cast, LoRA dropout 0.05, no
# packing). `python3 bench/memory.py --matrix bench/matrix.py:SIDE_BY_SIDE_8B --steps 8 --warmup 3`
_TRL_DEFAULTS = dict(trainer="trl", loss="chunked", grad_ckpt=True, compile=False, cast_adapter_inputs=True, dropout=0.05,
                     packing=False)
SIDE_BY_SIDE_8B = [dict(_PACK8, label=f"side-by-side:{name}", lengths="varied", **c) for name, c in (
    ("ftplan", {}), ("trl-ftplan-settings", dict(trainer="trl", loss="chunked")), ("trl-defaults", _TRL_DEFAULTS))]

# A plain transformers + PEFT loop with the libraries' defaults, described by the estimate's flags
# (--loss model --no-compile --adapter-input-cast --lora-dropout 0.05, --kbit-prep for QLoRA):
# ftplan renders exactly that loop, so its estimate is held by runs of it.
_PLAIN = dict(loss="model", compile=False, cast_adapter_inputs=True, dropout=0.05, gpu="H200")
PLAIN_LOOP_H200 = [dict(_PLAIN, **c) for c in (
    dict(model="Llama-3.2-1B", method="lora", batch=4, seq_len=2048),
    dict(model="Llama-3.2-1B", method="qlora", batch=4, seq_len=2048, kbit_prep=True, grad_ckpt=True),
    dict(model="Qwen2.5-0.5B", method="lora", batch=8, seq_len=1024),
    dict(model="Qwen2.5-0.5B", method="qlora", batch=8, seq_len=1024, kbit_prep=True),
    dict(model="Qwen3-0.6B", method="lora", batch=4, seq_len=2048, grad_ckpt=True),
    dict(model="Gemma-3-1B", method="lora", batch=4, seq_len=1024),
    dict(model="Pythia-1B", method="lora", batch=4, seq_len=2048),
    dict(model="Phi-3-mini-4k", method="qlora", batch=2, seq_len=2048, kbit_prep=True, grad_ckpt=True),
    dict(model="Llama-3.1-8B", method="qlora", batch=2, seq_len=2048, kbit_prep=True, grad_ckpt=True),
    dict(model="Llama-3.1-8B", method="lora", batch=2, seq_len=2048, grad_ckpt=True),
)]

# 2026-12-02, H200, several runs sharing the GPU (bench/memory.py --parallel: each run measured
# by the memory NVML reports for its own process; no speed): the rest of TRL's matrix, five
# families, SFT and DPO, LoRA, QLoRA and full, with checkpointing on four families.
TRL_H200_3 = [dict(_TRL, **c) for c in (
    dict(model="Qwen3-0.6B", method="lora", batch=8, seq_len=1024),
    dict(model="Qwen3-0.6B", method="qlora", task="dpo", batch=4, seq_len=1024),
    dict(model="Gemma-3-1B", method="full", batch=4, seq_len=1024),
    dict(model="Gemma-3-1B", method="lora", task="dpo", batch=2, seq_len=1024),
    dict(model="Pythia-1B", method="full", batch=4, seq_len=2048),
    dict(model="Pythia-1B", method="qlora", batch=4, seq_len=2048),
    dict(model="Phi-3-mini-4k", method="qlora", batch=2, seq_len=2048),
    dict(model="Phi-3-mini-4k", method="lora", task="dpo", batch=1, seq_len=1024),
    dict(model="Qwen2.5-0.5B", method="full", task="dpo", batch=2, seq_len=1024),
    dict(model="Qwen2.5-1.5B", method="lora", batch=4, seq_len=2048, packing=False),
    dict(model="Llama-3.2-1B", method="qlora", task="dpo", batch=4, seq_len=1024),
    dict(model="Llama-3.2-3B", method="full", task="dpo", batch=2, seq_len=1024),
    dict(model="Llama-3.1-8B", method="qlora", batch=2, seq_len=2048),
    dict(model="Llama-3.2-1B", method="lora", batch=8, seq_len=2048, grad_ckpt=True),
    dict(model="Qwen3-0.6B", method="full", batch=8, seq_len=2048, grad_ckpt=True),
    dict(model="Gemma-3-1B", method="lora", batch=4, seq_len=2048, grad_ckpt=True),
    dict(model="Pythia-1B", method="lora", batch=4, seq_len=2048, grad_ckpt=True, compile=False),
    dict(model="Qwen2.5-0.5B", method="lora", batch=8, seq_len=2048, grad_ckpt=True, compile=False),
)]
# the first, alone, checks that a run's own NVML memory is the device's (bench/memory.py)
SHARED_H200_1 = PLAIN_LOOP_H200[:1] + TRL_H200_3 + PLAIN_LOOP_H200[1:]

# 2026-12-02, H200, second call: the side-by-side plans alone (speed), then sharing the GPU: the
# plain loop's last five plans; TRL's LoRA runs with checkpointing traced (bench/allocator.py);
# a second Falcon plan; and architectures outside the catalog that the code derives, written
# from their published configs with fewer layers or a narrower width: Qwen3's and Qwen1.5's
# mixtures of experts (the latter with a shared expert) and GLM-4's fused gate_up MLP.
_CFG = "bench/configs/"
SHARED_H200_2 = [dict(c, alone=True) for c in SIDE_BY_SIDE_8B] + [
    dict(_TRL, model="Qwen2.5-0.5B", method="lora", batch=8, seq_len=2048, grad_ckpt=True, trace=True, label="trl:ckpt-traced"),
    dict(_TRL, model="Llama-3.2-1B", method="lora", batch=8, seq_len=2048, grad_ckpt=True, compile=False, trace=True,
         label="trl:ckpt-eager-traced"),
    dict(model="Llama-3.2-1B", method="lora", batch=8, seq_len=2048, grad_ckpt=True, loss="chunked", gpu="H200",
         trace=True, label="ftplan:ckpt-chunked-traced"),
    *PLAIN_LOOP_H200[5:],
    dict(model="Falcon-7B", method="lora", batch=1, seq_len=2048, gpu="H200"),
    dict(model=_CFG + "qwen3-moe-4b", method="lora", batch=4, seq_len=2048, gpu="H200"),
    dict(model=_CFG + "qwen3-moe-4b", method="qlora", batch=4, seq_len=2048, gpu="H200"),
    dict(model=_CFG + "qwen2-moe-3b", method="lora", batch=4, seq_len=2048, gpu="H200"),
    dict(model=_CFG + "glm4-1b", method="lora", batch=4, seq_len=2048, gpu="H200"),
    dict(model=_CFG + "glm4-1b", method="full", batch=4, seq_len=2048, grad_ckpt=True, gpu="H200"),
]
# What SHARED_H200_2's call left unstarted (its alone runs were queued again, and the call fell
# back to one run at a time), with held-out TRL adapter runs with checkpointing (the recomputed
# layer's backward, planner/memory.py layer_backward_bytes, was read from the runs above).
SHARED_H200_3 = [c for c in SHARED_H200_2 if not c.get("alone") and not c.get("trace")] + [
    dict(_TRL, model="Phi-3-mini-4k", method="lora", batch=2, seq_len=2048, grad_ckpt=True, label="trl:ckpt-held-out"),
    dict(_TRL, model="Qwen3-0.6B", method="lora", batch=8, seq_len=2048, grad_ckpt=True, compile=False,
         label="trl:ckpt-held-out"),
    dict(_TRL, model="Gemma-3-1B", method="qlora", batch=4, seq_len=2048, grad_ckpt=True, label="trl:ckpt-held-out"),
]
# The smallest of SHARED_H200_3, for a call with little device time left: three plain-loop plans
# and the three held-out TRL runs with checkpointing, all started at once (--no-solo).
SHARED_H200_3_SMALL = [c for c in SHARED_H200_3 if c["model"] in ("Gemma-3-1B", "Pythia-1B", "Phi-3-mini-4k", "Qwen3-0.6B")]

# 2026-12-02, H200, what SHARED_H200_3's calls left: the plain loop's two 8B plans, Falcon-7B's
# LoRA plan alone (its sdpa runs the math kernel, whose scores the estimate may undercount, so it
# shares the GPU with nothing), the mixtures of experts and GLM-4, and the held-out eager TRL run.
SHARED_H200_4 = [dict(c, alone=True) for c in SHARED_H200_3 if c["model"] == "Falcon-7B"] + [
    c for c in SHARED_H200_3 if c["model"] not in ("Gemma-3-1B", "Pythia-1B", "Phi-3-mini-4k", "Falcon-7B")]

# 2026-12-02, H200: TRL's full DPO with the reference log-probs precomputed (no reference copy);
# a second Qwen1.5-MoE plan (QLoRA); QLoRA on the LayerNorm families held out from the rule that
# counts it uncompiled (Falcon-7B, and Pythia-1B under ftplan's own loop); Falcon-7B beyond batch 1,
# where sdpa's math kernel copies k and v to every head.
SHARED_H200_5 = [
    dict(_TRL, model="Llama-3.2-3B", method="full", task="dpo", batch=2, seq_len=1024, precompute_ref=True),
    dict(_TRL, model="Qwen2.5-0.5B", method="full", task="dpo", batch=2, seq_len=1024, precompute_ref=True),
    dict(model=_CFG + "qwen2-moe-3b", method="qlora", batch=4, seq_len=2048, gpu="H200"),
    dict(model="Falcon-7B", method="qlora", batch=1, seq_len=2048, gpu="H200", label="qlora-layernorm:held-out"),
    dict(model="Pythia-1B", method="qlora", batch=4, seq_len=2048, gpu="H200", label="qlora-layernorm:held-out"),
    dict(model="Falcon-7B", method="lora", batch=2, seq_len=1024, gpu="H200"),
]

# 2026-12-02, H200: the layouts ftplan derives from a config's own code and has not run, written
# from their published configs with fewer layers (bench/configs/): Granite, SmolLM3 (LoRA, full
# with checkpointing), OLMoE (LoRA, QLoRA) and Cohere Command R (LoRA, QLoRA; a 256k vocabulary).
SHARED_H200_6 = [dict(model=_CFG + name, method=method, batch=batch, seq_len=seq, gpu="H200", **extra)
                 for name, method, batch, seq, extra in (
    ("granite-2b", "lora", 4, 2048, {}), ("granite-2b", "full", 4, 2048, dict(grad_ckpt=True)),
    ("smollm3-1b", "lora", 4, 2048, {}), ("smollm3-1b", "full", 4, 2048, dict(grad_ckpt=True)),
    ("olmoe-2b", "lora", 4, 2048, {}), ("olmoe-2b", "qlora", 4, 2048, {}),
    ("cohere-4b", "lora", 2, 1024, {}), ("cohere-4b", "qlora", 2, 1024, {}),
)]

# 2026-12-02, H200: the chunked loss applying the model's own logit transform (Gemma 2's
# soft-capping, Cohere's scale) on the GPU, the scripts unchanged.
LOGIT_TRANSFORM_H200 = [
    dict(model="Gemma-2-2B", method="lora", batch=4, seq_len=2048, loss="chunked", gpu="H200"),
    dict(model="Gemma-2-2B", method="full", batch=4, seq_len=2048, loss="chunked", grad_ckpt=True, gpu="H200"),
    dict(model=_CFG + "cohere-4b", method="lora", batch=2, seq_len=1024, loss="chunked", gpu="H200"),
]

# 2026-12-02, H200: latent attention (DeepSeek-V2-Lite's and DeepSeek-V2's published shapes, fewer
# layers: one dense layer, then mixture-of-experts layers with shared experts), read from the
# model's own code; packed (FlexAttention) and unpacked (sdpa). The adapters name the attention
# projections (what all-linear is for these models under PEFT 0.21.2), whatever PEFT runs them.
_ATT = dict(targets="attention")
DEEPSEEK_H200 = [dict(model=_CFG + name, method=method, batch=batch, seq_len=seq, gpu="H200", **extra)
                 for name, method, batch, seq, extra in (
    ("deepseek-v2-lite-4b", "lora", 4, 2048, _ATT), ("deepseek-v2-lite-4b", "qlora", 4, 2048, _ATT),
    ("deepseek-v2-lite-4b", "full", 4, 2048, dict(grad_ckpt=True)),
    ("deepseek-v2-lite-4b", "lora", 2, 2048, dict(packing=False, **_ATT)),
    ("deepseek-v2-9b", "lora", 2, 2048, _ATT),
)]

# 2026-12-02, H200: a hybrid of gated short-convolution and attention layers (LFM2-1.2B's
# published config: 10 convolution layers, 6 attention layers), read from the model's own code;
# one example a row (packed, the convolutions would read across examples).
LFM2_H200 = [dict(model=_CFG + "lfm2-1.2b", method=method, batch=batch, seq_len=2048, gpu="H200", **extra)
             for method, batch, extra in (
    ("lora", 8, {}), ("qlora", 8, {}), ("full", 8, {}), ("full", 8, dict(grad_ckpt=True)),
)]

# 2026-12-02, H200: DeepSeek-V3's code (a sigmoid router with a bias for choosing, interleaved
# RoPE) at Moonlight-16B-A3B's published shapes with 8 of 27 layers.
DEEPSEEK_V3_H200 = [dict(model=_CFG + "deepseek-v3-moonlight-4b", method=method, batch=batch, seq_len=2048, gpu="H200", **extra)
                    for method, batch, extra in (
    ("lora", 4, _ATT), ("qlora", 4, _ATT), ("full", 4, dict(grad_ckpt=True)),
)]

# 2026-12-02, H200: full fine-tuning of the mixtures of experts measured with adapters so far, now
# that the routers train with their load-balancing loss (the model's own, output_router_logits).
MOE_FULL_H200 = [dict(model=_CFG + name, method="full", batch=4, seq_len=2048, gpu="H200", **extra)
                 for name, extra in (
    ("mixtral-2b", {}), ("olmoe-2b", {}), ("qwen3-moe-4b", dict(grad_ckpt=True)), ("qwen2-moe-3b", dict(grad_ckpt=True)),
)]

# 2026-12-02, H200: LoRA on the fused experts (--targets experts: PEFT's target_parameters,
# which folds each expert's update into its whole weight every forward), on five mixtures of
# experts, with and without checkpointing, compiled and eager, and in 4 bits (the experts stay bf16).
_EXP = "attention,experts"
EXPERTS_H200 = [dict(model=_CFG + name, method=method, batch=4, seq_len=2048, gpu="H200", targets=targets, **extra)
                for name, method, targets, extra in (
    ("mixtral-2b", "lora", _EXP, {}), ("mixtral-2b", "lora", _EXP, dict(compile=False)), ("mixtral-2b", "qlora", _EXP, {}),
    ("qwen3-moe-4b", "lora", "all-linear,experts", {}), ("olmoe-2b", "lora", _EXP, dict(grad_ckpt=True)),
    ("qwen2-moe-3b", "lora", "all-linear,experts", {}), ("deepseek-v2-lite-4b", "lora", _EXP, {}),
    ("qwen3-moe-4b", "lora", "experts", dict(grad_ckpt=True)),
)]

# The same day, second call: one at a time for speed, what folding LoRA into the experts costs a
# step; then, sharing the GPU, the Qwen3-MoE-shaped plan with checkpointing that failed compiled
# in the first call (torch's CheckpointError), eager now, with and without the attention's LoRA.
EXPERTS_H200_2 = [dict(model=_CFG + "mixtral-2b", method="lora", batch=4, seq_len=2048, gpu="H200", targets=targets,
                       alone=True, **extra)
                  for targets, extra in (("attention", {}), (_EXP, {}), (_EXP, dict(grad_ckpt=True)))] + [
    dict(model=_CFG + "qwen3-moe-4b", method="lora", batch=4, seq_len=2048, gpu="H200", targets=targets, grad_ckpt=True)
    for targets in ("experts", _EXP)]

# 2026-12-02, H200: where the allocated peak matched the estimate and the reserved one did not.
# Full fine-tuning with checkpointing reserved 3-9 GiB beyond what it allocated (Granite-shaped
# -11.3%, Qwen1.5-MoE-shaped -7.6%, DeepSeek-V2-Lite-shaped -4.9%), and Cohere's LoRA with its
# 256k-entry head reserved almost nothing beyond it (+9.5%): the same plans with the allocator's
# history recorded, to see what the free holes at the mapping's peak held.
TRACE_RESERVED_H200 = [dict(model=_CFG + name, method="full", batch=4, seq_len=2048, gpu="H200", grad_ckpt=True, trace=True,
                            label=f"trace-full-ckpt-{name}")
                       for name in ("granite-2b", "qwen2-moe-3b", "deepseek-v2-lite-4b")] + [
    dict(model=_CFG + "cohere-4b", method="lora", batch=2, seq_len=1024, gpu="H200", trace=True, label="trace-lora-cohere-4b")]

# The same day, fourth call: the Mixtral-shaped pair alone again at batch 1, a quarter of the
# tokens, to tell a cost per token from a cost per byte of the experts' weights.
EXPERTS_B1_H200 = [dict(model=_CFG + "mixtral-2b", method="lora", batch=1, seq_len=2048, gpu="H200", targets=targets, alone=True)
                   for targets in ("attention", _EXP)]
