"""The CLI contract: JSON fields, one-line errors with exit code 2, no torch on the estimate path."""

import json
import subprocess
import sys

import pytest

ROOT = __import__("pathlib").Path(__file__).resolve().parents[2]


def cli(*args):
    return subprocess.run([sys.executable, "-m", "planner", *args], capture_output=True, text=True, cwd=ROOT,
                          env={"PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1", "NO_COLOR": "1", "PYTHONPATH": str(ROOT)})


def test_estimate_json_contract():
    out = cli("estimate", "--model", "Llama-3.1-8B", "--method", "qlora", "--batch", "4", "--grad-ckpt",
              "--gpu", "H100-SXM", "--json")
    assert out.returncode == 0, out.stderr
    d = json.loads(out.stdout)
    assert sum(d["breakdown"].values()) == d["total_bytes"]
    assert d["fits"] is True and d["gpu"]["name"] == "H100-SXM" and d["max_micro_batch"] >= 4


def test_estimate_and_recommend_report_time_and_cost():
    out = cli("estimate", "--model", "Llama-3.1-8B", "--batch", "4", "--gpu", "H100-SXM", "--dataset-tokens",
              "50000000", "--epochs", "2", "--price", "2.5", "--json")
    sp = json.loads(out.stdout)["speed"]
    assert sp["total_steps"] == -(-100_000_000 // (4 * 2048)) and sp["price_per_gpu_hour"] == 2.5
    assert sp["cost"] == pytest.approx(sp["total_s"] / 3600 * 2.5, abs=0.01)
    assert {t["name"] for t in sp["terms"]} >= {"matmul", "pointwise_compiled"} and 0 < sp["mfu"] < 1
    rec = json.loads(cli("recommend", "--model", "Llama-3.1-8B", "--gpu", "H100-SXM", "--examples", "1000",
                         "--json").stdout)
    assert rec["speed"]["tokens_per_s"] > 0 and rec["speed"]["dataset_tokens"] == 1000 * rec["plan"]["seq_len"]
    text = cli("estimate", "--model", "Llama-3.1-8B", "--gpu", "H100-SXM", "--dataset-tokens", "1000000").stdout
    assert "tokens/s" in text and "MFU" in text and "$" in text


def test_estimate_does_not_import_torch_or_transformers():
    code = subprocess.run([sys.executable, "-c", (
        "import sys; from planner.cli.main import main;"
        "rc = main(['estimate', '--model', 'Qwen2.5-7B', '--method', 'lora', '--gpu', 'L4', '--json']);"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('torch', 'transformers', 'peft', 'trl')];"
        "print(bad, file=sys.stderr); sys.exit(rc or (3 if bad else 0))")], capture_output=True, text=True, cwd=ROOT)
    assert code.returncode == 0, code.stderr


@pytest.mark.parametrize("args,needle", [
    (("estimate", "--model", "Lama-3-8B"), "did you mean"),
    (("estimate", "--model", "Llama-3.1-8B", "--batch", "0"), "--batch"),
    (("estimate", "--model", "Llama-3.1-8B", "--seq-len", "-5"), "--seq-len"),
    (("estimate", "--model", "Llama-3.1-8B", "--rank", "2048", "--targets", "k_proj"), "larger than"),
    (("estimate", "--model", "Llama-3.1-8B", "--method", "qlora", "--precision", "mixed"), "QLoRA"),
    (("estimate", "--model", "Llama-3.1-8B", "--gpus", "0"), "--gpus"),
    (("estimate", "--model", "Llama-3.1-8B", "--gpu", "H1OO"), "unknown GPU"),
    (("estimate", "--model", "Llama-3.1-8B", "--method", "magic"), "invalid choice"),
    (("estimate", "--model", "99999B"), "outside"),
    (("recommend", "--model", "Llama-3.1-8B", "--gpu", "L4", "--examples", "0"), "--examples"),
    (("estimate", "--model", "Llama-3.1-8B", "--gpu", "H100-SXM", "--price", "-1"), "--price"),
    (("estimate", "--model", "Llama-3.1-8B", "--gpu", "H100-SXM", "--epochs", "0"), "--epochs"),
    (("run", "/nonexistent/run"), "no launch.sh"),
    (("submit", "/nonexistent/run"), "no slurm.sbatch"),
    (("estimate", "--model", "Llama-3.1-8B", "--engine", "fsdp", "--zero", "2", "--gpus", "2"), "drop --zero"),
    (("data", "/nonexistent.jsonl"), "no such dataset"),
    # LoRA on the fused experts: only where there are experts, and only what PEFT's ParamWrapper takes
    (("estimate", "--model", "Llama-3.1-8B", "--targets", "attention,experts"), "not a mixture of experts"),
    (("estimate", "--model", "Mixtral-8x7B", "--targets", "experts", "--dropout", "0.05"), "--dropout 0"),
    (("estimate", "--model", "Mixtral-8x7B", "--targets", "experts", "--method", "dora"), "--method lora"),
    (("estimate", "--model", "Mixtral-8x7B", "--targets", "experts", "--gpus", "2", "--zero", "3"), "--zero 2"),
    (("estimate", "--model", "Mixtral-8x7B", "--targets", "attention,experts", "--method", "ia3"), "--method lora"),
    # QLoRA where bitsandbytes quantizes no layer: every command refuses it with the same reason
    (("estimate", "--model", "Falcon-7B", "--method", "qlora", "--gpu", "H200"), "--method lora"),
    (("recommend", "--model", "Falcon-7B", "--method", "qlora", "--gpu", "H200"), "--method lora"),
    (("capacity", "--model", "Falcon-7B", "--method", "qlora"), "--method lora"),
    (("render", "--model", "Falcon-7B", "--method", "qlora", "--gpu", "H200", "--data",
      str(ROOT / "runner" / "data" / "instructions.jsonl"), "-o", "/tmp/ftplan-never"), "--method lora"),
])
def test_bad_input_is_one_line_exit_2(args, needle):
    out = cli(*args)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ftplan: error:") and needle in lines[0], out.stderr
    assert "Traceback" not in out.stderr


def test_a_plan_that_fits_nowhere_offers_qlora_only_where_bitsandbytes_quantizes_the_model():
    falcon = cli("recommend", "--model", "Falcon-7B", "--gpu", "T4")
    assert falcon.returncode == 2 and "Falcon-7B lora does not fit" in falcon.stderr and "QLoRA" not in falcon.stderr
    llama = cli("recommend", "--model", "Llama-3.1-70B", "--method", "full", "--gpu", "T4")
    assert llama.returncode == 2 and "QLoRA" in llama.stderr


def test_a_config_refused_after_reading_its_code_is_one_line(tmp_path):
    """Building the model from its code imports transformers, PEFT and bitsandbytes, whose own
    notes (a kernel a CPU lacks, a config key declined) must not reach the user's terminal."""
    pytest.importorskip("peft")
    (tmp_path / "config.json").write_text(json.dumps({
        "architectures": ["PhiForCausalLM"], "model_type": "phi", "hidden_size": 256, "intermediate_size": 1024,
        "num_hidden_layers": 2, "num_attention_heads": 8, "vocab_size": 1000, "partial_rotary_factor": 0.4}))
    out = subprocess.run([sys.executable, "-m", "planner", "estimate", "--model", str(tmp_path), "--gpu", "H200"],
                         capture_output=True, text=True, cwd=ROOT, env={"PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1",
                         "PYTHONPATH": str(ROOT), "FTPLAN_CACHE": str(tmp_path / "cache"), "HOME": str(tmp_path)})
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and "does not model" in out.stderr, out.stderr


def test_malformed_config_json_is_one_line(tmp_path):
    (tmp_path / "config.json").write_text("{oops")
    out = cli("estimate", "--model", str(tmp_path / "config.json"))
    assert out.returncode == 2 and "malformed config.json" in out.stderr and len(out.stderr.strip().splitlines()) == 1


def test_gpus_and_models_json():
    g = json.loads(cli("gpus", "--json").stdout)
    assert len(g["catalog"]) >= 15 and "problem" in g["detected"]
    m = json.loads(cli("models", "--json").stdout)
    assert len(m) >= 25 and all("total_params" in x for x in m)


def test_recommend_json_names_rules():
    out = cli("recommend", "--model", "Llama-3.1-8B", "--gpu", "A10G", "--examples", "3000", "--json")
    assert out.returncode == 0, out.stderr
    d = json.loads(out.stdout)
    assert all(r["rule"] and r["source"] for r in d["recommendations"])
    assert d["estimate"]["fits"] is True


def test_checklist_cli():
    d = json.loads(cli("checklist", "--yes", "prompt_fails", "enough_data", "--json").stdout)
    assert d["verdict"]["approach"] == "finetune"
