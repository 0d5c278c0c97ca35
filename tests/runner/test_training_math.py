"""What the rendered script computes, checked against references written here: packed examples
cannot see each other, and the loss of a step is the mean over all its target tokens."""

import importlib.util
import json
import random

import pytest

from planner import models, render
from planner.plan import Plan
from runner import process

torch = pytest.importorskip("torch")
pytest.importorskip("peft")


def rendered(tmp_path, tiny_model, data, **plan):
    spec = models.resolve(str(tiny_model))
    p = Plan(model=str(tiny_model), data=str(data), data_format="alpaca", precision="fp32", eval_fraction=0.0,
             **{"method": "lora", "rank": 4, "alpha": 8, **plan})
    run_dir = tmp_path / "run"
    render.render(p, spec, run_dir, str(tiny_model), str(data), "alpaca", command="pytest")
    spec_ = importlib.util.spec_from_file_location("rendered_train", run_dir / "train.py")
    module = importlib.util.module_from_spec(spec_)
    spec_.loader.exec_module(module)
    return run_dir, module


def load(tiny_model):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(str(tiny_model), dtype=torch.float32, attn_implementation="sdpa").eval()
    return model, AutoTokenizer.from_pretrained(str(tiny_model))


def test_packed_examples_cannot_see_each_other(tmp_path, tiny_model, dataset):
    _, train = rendered(tmp_path, tiny_model, dataset("alpaca"), seq_len=96)
    model, _ = load(tiny_model)
    rng = random.Random(0)
    lengths = [20, 31, 17, 28]
    examples = [([rng.randrange(5, 200) for _ in range(n)], [rng.randrange(5, 200) for _ in range(n)]) for n in lengths]
    changed = list(examples)
    changed[1] = ([rng.randrange(5, 200) for _ in range(lengths[1])], changed[1][1])  # same length, other tokens
    starts = [sum(lengths[:i]) for i in range(len(lengths))]

    def logits(exs):
        block = train.pack(exs)
        assert len(block) == 1  # all four in one block
        with torch.no_grad():
            return model(**train.model_inputs(train.collate(block, 0)), use_cache=False).logits[0]  # as the script runs it

    before, after = logits(examples), logits(changed)
    for i, (start, n) in enumerate(zip(starts, lengths)):
        if i == 1:
            continue
        assert torch.allclose(before[start:start + n], after[start:start + n], atol=1e-5), i
        with torch.no_grad():
            alone = model(input_ids=torch.tensor([examples[i][0]])).logits[0]
        assert torch.allclose(before[start:start + n], alone, atol=1e-4), i  # as if it were alone
    assert not torch.allclose(before[starts[1]:starts[1] + lengths[1]], after[starts[1]:starts[1] + lengths[1]])
    labels = train.pack(examples)[0][1]
    assert all(labels[s] == -100 for s in starts)  # no example's first token is predicted from the one before


def test_the_old_packing_attends_across_only_when_asked(tmp_path, tiny_model, dataset):
    run_dir, train = rendered(tmp_path, tiny_model, dataset("alpaca"), seq_len=96, packing_attends_across=True)
    assert "WARNING: packing without isolation" in (run_dir / "train.py").read_text()
    block = train.pack([([7] * 10, [7] * 10), ([9] * 10, [9] * 10)])[0]
    assert block[2] == list(range(20))


def test_the_step_loss_is_the_mean_over_every_target_token_of_the_step(tmp_path, tiny_model, dataset):
    """Two micro-batches of very different lengths: the logged loss of step 1 (before any
    update) equals the reference token-weighted mean over both, not the mean of their means."""
    run_dir, train = rendered(tmp_path, tiny_model, dataset("alpaca", 40), seq_len=256, batch=1, grad_accum=2, packing=False,
                              max_steps=1, learning_rate=1e-6)
    events = list(process.run(run_dir))
    assert events[-1].state == "succeeded", (run_dir / "stderr.log").read_text()[-2000:]
    logged = next(json.loads(line)["loss"] for line in (run_dir / "metrics.jsonl").read_text().splitlines() if '"step"' in line)

    model, tokenizer = load(tiny_model)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    rows = train.read_rows(train.DATA_PATH)
    random.Random(train.SEED).shuffle(rows)
    examples = [train.encode(tokenizer, r, train.leading_tokens(tokenizer)) for r in rows]
    micro = train.make_batches(examples, 0, tokenizer.pad_token_id)[:2]
    totals, counts = [], []
    with torch.no_grad():
        for b in micro:
            logits = model(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits[:, :-1]
            target = b["labels"][:, 1:]
            totals.append(torch.nn.functional.cross_entropy(logits.transpose(1, 2), target, ignore_index=-100, reduction="sum"))
            counts.append(int((target != -100).sum()))
    assert counts[0] != counts[1]  # uneven, or the test proves nothing
    reference = float(sum(totals) / sum(counts))
    mean_of_means = float(sum(t / c for t, c in zip(totals, counts)) / 2)
    assert logged == pytest.approx(reference, rel=1e-4)
    assert abs(reference - mean_of_means) > 1e-3  # the two definitions differ on these rows
