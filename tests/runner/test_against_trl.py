"""The rendered script trains on the tokens, masks and losses TRL computes for the same rows
(CPU, fp32, the same tiny model): SFT in every row format and DPO with every loss type ftplan
offers, with a tokenizer that adds BOS itself and one that does not, with a chat template and
without one."""

import importlib.util
import json
import shutil

import pytest

from planner import models, render
from planner.plan import DPO_LOSSES, Plan

torch = pytest.importorskip("torch")
pytest.importorskip("peft")
trl = pytest.importorskip("trl")
datasets = pytest.importorskip("datasets")

ROWS = 6
LORA = dict(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=["q_proj", "v_proj", "up_proj"])


@pytest.fixture(scope="module", params=["no-bos", "adds-bos"])
def model_dir(request, tiny_model, tmp_path_factory):
    """The tiny model with its ChatML template; `adds-bos`: its tokenizer puts BOS before every
    text it encodes, as Llama's and Gemma's do."""
    out = tmp_path_factory.mktemp(request.param) / "model"
    shutil.copytree(tiny_model, out)
    if request.param == "adds-bos":
        from tokenizers import processors
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(out)
        tok.backend_tokenizer.post_processor = processors.TemplateProcessing(
            single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", tok.bos_token_id)])
        tok.save_pretrained(out)
        assert tok("x")["input_ids"][0] == tok.bos_token_id
    return out


def without_chat_template(model_dir, tmp_path):
    out = tmp_path / "plain"
    shutil.copytree(model_dir, out)
    for name in ("chat_template.jinja",):
        (out / name).unlink(missing_ok=True)
    config = json.loads((out / "tokenizer_config.json").read_text())
    config.pop("chat_template", None)
    (out / "tokenizer_config.json").write_text(json.dumps(config))
    return out


def rendered_script(tmp_path, model_dir, data, fmt, **plan):
    p = Plan(model=str(model_dir), method="lora", rank=4, alpha=8, precision="fp32", packing=False, eval_fraction=0.0,
             **plan)
    run_dir = tmp_path / "run"
    render.render(p, models.resolve(str(model_dir)), run_dir, str(model_dir), str(data), fmt, command="pytest")
    spec = importlib.util.spec_from_file_location(f"train_{fmt}", run_dir / "train.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tokenizer_of(model_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return tok


def adapted_model(model_dir):
    """The tiny model with LoRA adapters that already moved (B is not zero), so DPO's
    policy and reference differ."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32, attn_implementation="sdpa")
    return get_peft_model(base, LoraConfig(**LORA, init_lora_weights=False)).eval()


def close(a, b):
    return abs(a - b) <= 1e-5 * max(abs(a), abs(b), 1e-8)


# ---------------------------------------------------------------------------- SFT
def trl_sft_rows(fmt, rows, script):
    """The same examples in TRL's dataset types: prompt-completion (conversational for chat
    formats) or plain text."""
    if fmt == "alpaca":
        return [{"prompt": script.alpaca_prompt(r), "completion": r["output"]} for r in rows]
    if fmt == "messages":
        return [{"prompt": r["messages"][:-1], "completion": r["messages"][-1:]} for r in rows]
    return [{"text": r["text"]} for r in rows]


@pytest.mark.parametrize("fmt", ["alpaca", "messages", "completion"])
def test_sft_rows_masks_and_loss_equal_trl(tmp_path, model_dir, dataset, fmt):
    from trl import SFTConfig, SFTTrainer

    data = dataset(fmt, ROWS)
    script = rendered_script(tmp_path, model_dir, data, fmt)
    tokenizer = tokenizer_of(model_dir)
    rows = script.read_rows(data)
    ours = [script.encode(tokenizer, r) if fmt == "messages" else script.encode(tokenizer, r, script.leading_tokens(tokenizer))
            for r in rows]

    model = adapted_model(model_dir)
    args = SFTConfig(output_dir=str(tmp_path / "trl"), report_to="none", use_cpu=True, bf16=False, max_length=None,
                     packing=False, per_device_train_batch_size=ROWS)
    trainer = SFTTrainer(model=model, args=args, train_dataset=datasets.Dataset.from_list(trl_sft_rows(fmt, rows, script)),
                         processing_class=tokenizer)
    theirs = [trainer.train_dataset[i] for i in range(ROWS)]
    for (ids, labels), row in zip(ours, theirs):
        assert ids == row["input_ids"]
        assert labels[1:] == row["labels"][1:]  # the first token is never a target
    batch = script.collate(ours, tokenizer.pad_token_id)
    with torch.no_grad():
        our_loss = float(script.sft_loss(model, batch)) / script.target_tokens(batch)
        trl_loss = float(trainer.compute_loss(model, trainer.data_collator(theirs)))
    assert close(our_loss, trl_loss), (our_loss, trl_loss)


def test_alpaca_rows_start_as_the_tokenizer_starts_a_prompt(tmp_path, model_dir, dataset):
    """BOS follows the tokenizer, chat template or not: what tokenizer(prompt) gives at inference."""
    data = dataset("alpaca", 2)
    script = rendered_script(tmp_path, model_dir, data, "alpaca")
    tokenizer = tokenizer_of(model_dir)
    row = script.read_rows(data)[0]
    ids, labels = script.encode(tokenizer, row, script.leading_tokens(tokenizer))
    at_inference = tokenizer(script.alpaca_prompt(row))["input_ids"]
    assert ids[: len(at_inference)] == at_inference
    assert all(label == -100 for label in labels[: len(at_inference)])


# ---------------------------------------------------------------------------- DPO
@pytest.mark.parametrize("chat", [True, False], ids=["chat-template", "no-chat-template"])
@pytest.mark.parametrize("loss_type", DPO_LOSSES)
def test_dpo_rows_masks_and_loss_equal_trl(tmp_path, model_dir, dataset, loss_type, chat):
    """With a chat template TRL reads the rows as conversations (each answer ends as the
    template ends an assistant turn); without one as text (each answer ends with eos)."""
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM
    from trl import DPOConfig, DPOTrainer

    model_dir = model_dir if chat else without_chat_template(model_dir, tmp_path)
    data = dataset("preference", ROWS)
    script = rendered_script(tmp_path, model_dir, data, "preference", task="dpo", dpo_loss_type=loss_type, dpo_beta=0.5)
    tokenizer = tokenizer_of(model_dir)
    assert bool(tokenizer.chat_template) == chat
    rows = script.read_rows(data)
    ours = [script.encode(tokenizer, r, script.leading_tokens(tokenizer)) for r in rows]

    if chat:
        trl_rows = [{"prompt": [{"role": "user", "content": r["prompt"]}],
                     "chosen": [{"role": "assistant", "content": r["chosen"]}],
                     "rejected": [{"role": "assistant", "content": r["rejected"]}]} for r in rows]
    else:
        trl_rows = rows
    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32, attn_implementation="sdpa")
    args = DPOConfig(output_dir=str(tmp_path / "trl"), report_to="none", use_cpu=True, bf16=False, max_length=None,
                     beta=0.5, loss_type=[loss_type], per_device_train_batch_size=ROWS)
    trainer = DPOTrainer(model=base, args=args, train_dataset=datasets.Dataset.from_list(trl_rows), processing_class=tokenizer,
                         peft_config=LoraConfig(**LORA, init_lora_weights=False))
    theirs = [trainer.train_dataset[i] for i in range(ROWS)]
    for ((chosen_ids, chosen_labels), (rejected_ids, rejected_labels)), row in zip(ours, theirs):
        prompt = len(row["prompt_ids"])
        assert chosen_ids == row["prompt_ids"] + row["chosen_ids"]
        assert rejected_ids == row["prompt_ids"] + row["rejected_ids"]
        assert chosen_labels == [-100] * prompt + row["chosen_ids"]
        assert rejected_labels == [-100] * prompt + row["rejected_ids"]
        if chat:  # the answer ends with the template's end of turn, not the tokenizer's eos
            assert tokenizer.decode(row["chosen_ids"]).endswith("<|im_end|>\n")

    model = trainer.model.eval()
    batch = script.collate([pair[0] for pair in ours] + [pair[1] for pair in ours], tokenizer.pad_token_id)
    with torch.no_grad():
        our_loss = float(script.dpo_loss(model, batch)[0])
        trl_loss = float(trainer.compute_loss(model, trainer.data_collator(theirs)))
        with model.disable_adapter():
            unmoved = float(script.dpo_loss(model, batch)[0])  # policy = reference
    assert abs(our_loss - unmoved) > 1e-5 * abs(unmoved)  # the policy moved: a real comparison
    assert close(our_loss, trl_loss), (our_loss, trl_loss)
