"""Hostile input never crashes ftplan and never half-runs: every command answers exit 0 or 2,
never a traceback, and a render that fails leaves nothing behind. Property-based (hypothesis),
run in-process through the CLI's own main()."""

import contextlib
import io
import json
import math
from pathlib import Path

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from planner.cli.main import main  # noqa: E402
from planner.plan import Plan  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
DATA = str(ROOT / "runner/data/instructions.jsonl")
@pytest.fixture(autouse=True, scope="module")
def _elsewhere(tmp_path_factory):
    """Relative paths a generated command line names land in a scratch folder, not the checkout."""
    import os

    before = os.getcwd()
    os.chdir(tmp_path_factory.mktemp("cwd"))
    yield
    os.chdir(before)


FAST = settings(max_examples=300, deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def ftplan(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in argv])
    return code, out.getvalue(), err.getvalue()


def one_line_error(code: int, err: str) -> None:
    assert code in (0, 2), (code, err)
    if code == 2:
        lines = [line for line in err.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("ftplan: error: "), err
        assert "Traceback" not in err


NUMBERS = st.one_of(
    st.sampled_from(["nan", "inf", "-inf", "-1", "0", "1e309", "-0", "1.5", "true", "ten", "", " ", "0x10",
                     "9" * 400, "1_000", "NaN", "+5"]),
    st.integers(min_value=-10**12, max_value=10**12).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
)
NUMERIC_FLAGS = ["--batch", "--seq-len", "--grad-accum", "--rank", "--alpha", "--dropout", "--virtual-tokens",
                 "--gpus", "--nodes", "--dpo-beta", "--dataset-tokens", "--epochs", "--price"]


@FAST
@given(flag=st.sampled_from(NUMERIC_FLAGS), value=NUMBERS, command=st.sampled_from(["estimate", "capacity"]))
def test_numeric_flags(flag, value, command):
    argv = [command, "--model", "Llama-3.2-1B", "--gpu", "L4", flag, value]
    if command == "capacity" and flag in ("--gpus", "--nodes", "--epochs"):
        return
    code, _, err = ftplan(*argv)
    one_line_error(code, err)
    if code == 0 and flag in ("--batch", "--seq-len", "--rank", "--gpus", "--nodes"):
        assert float(value) >= 1


@FAST
@given(name=st.text(min_size=1, max_size=300).filter(lambda s: not s.startswith("-")))
def test_model_names(name):
    code, _, err = ftplan("estimate", "--model", name, "--gpu", "L4")
    one_line_error(code, err)


VALUES = st.one_of(st.none(), st.booleans(), st.integers(min_value=-10**30, max_value=10**30),
                   st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=30),
                   st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=5), st.integers(), max_size=2))
FIELDS = [f for f in Plan.__dataclass_fields__ if f != "model"]


def _toml_value(v) -> str | None:
    if v is None:
        return None
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return "nan" if math.isnan(v) else ("inf" if v == math.inf else "-inf" if v == -math.inf else repr(v))
    if isinstance(v, (int, str)):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(json.dumps(x) for x in v) + "]"
    return "{" + ", ".join(f"{json.dumps(k)} = {x}" for k, x in v.items()) + "}"


@FAST
@given(changes=st.dictionaries(st.sampled_from(FIELDS), VALUES, min_size=1, max_size=3))
def test_tampered_plan_toml(tmp_path_factory, changes):
    tmp = tmp_path_factory.mktemp("plan")
    lines = ["[plan]", 'model = "Llama-3.2-1B"']
    for key, value in changes.items():
        text = _toml_value(value)
        if text is not None:
            lines.append(f"{key} = {text}")
    (tmp / "plan.toml").write_text("\n".join(lines) + "\n")
    out = tmp / "run"
    code, _, err = ftplan("render", "--plan", tmp / "plan.toml", "--data", DATA, "-o", out, "--gpu", "H100-SXM")
    one_line_error(code, err)
    if code == 2:
        assert not out.exists() and [p.name for p in tmp.iterdir()] == ["plan.toml"]
    else:
        train = (out / "train.py").read_text()
        compile(train, "train.py", "exec")
        assert "= True\n" not in train.split("MICRO_BATCH")[1][:20]


CONFIG_VALUES = st.one_of(st.none(), st.booleans(), st.integers(min_value=-10**6, max_value=10**6),
                          st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=10),
                          st.lists(st.integers(min_value=0, max_value=100), max_size=3))
CONFIG_KEYS = ["hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads", "intermediate_size",
               "vocab_size", "head_dim", "tie_word_embeddings", "num_local_experts", "num_experts_per_tok",
               "model_type", "architectures", "text_config", "max_position_embeddings", "moe_intermediate_size"]
LLAMA = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 256, "num_hidden_layers": 2,
         "num_attention_heads": 4, "num_key_value_heads": 2, "intermediate_size": 512, "vocab_size": 1000}


@FAST
@given(changes=st.dictionaries(st.sampled_from(CONFIG_KEYS), CONFIG_VALUES, min_size=1, max_size=3))
def test_hostile_model_configs(tmp_path_factory, changes):
    tmp = tmp_path_factory.mktemp("model")
    (tmp / "config.json").write_text(json.dumps({**LLAMA, **changes}, allow_nan=True))
    code, out, err = ftplan("estimate", "--model", tmp, "--gpu", "L4", "--method", "full", "--json")
    one_line_error(code, err)
    if code == 0:
        d = json.loads(out)
        assert d["total_params"] > 0 and d["total_bytes"] > 0


@pytest.mark.parametrize("content", [b"[]", b'"running"', b"null", b"\xff\xfe\x00", b'{"state": "running", "pid": 99999999999999999999, "runner_pid": -5}',
                                     b'{"state": "running", "runner_pid": "x"}', b"{"])
def test_corrupt_status_files_are_never_trusted(tmp_path, content):
    from runner import status

    (tmp_path / "status.json").write_bytes(content)
    assert isinstance(status.read(tmp_path), dict)
    assert status.is_running(tmp_path) is False


JSONISH = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=20)),
                       lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)),
                       max_leaves=12)
ROW_KEYS = st.sampled_from(["instruction", "input", "output", "conversations", "messages", "text", "prompt", "chosen",
                            "rejected", "from", "value", "role", "content"])


@FAST
@given(rows=st.lists(st.one_of(st.dictionaries(ROW_KEYS, JSONISH, min_size=1, max_size=4), JSONISH), min_size=1, max_size=5),
       raw=st.sampled_from(["", "{", "\ud800", "[" * 5000, '{"instruction": "' + "9" * 5000 + '"}']))
def test_hostile_data_rows(tmp_path_factory, rows, raw):
    tmp = tmp_path_factory.mktemp("data")
    path = tmp / "train.jsonl"
    text = "".join(json.dumps(r) + "\n" for r in rows) + raw
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    code, _, err = ftplan("data", path)
    one_line_error(code, err)


@pytest.mark.parametrize("name", ["[bold]run", "r[/]un", "[red]x[/red]", "a]b[c"])
def test_markup_in_user_strings_is_printed_as_written(tmp_path, name):
    out = tmp_path / name
    code, stdout, err = ftplan("render", "--model", "Llama-3.2-1B", "--gpu", "H100-SXM", "--data", DATA, "-o", out,
                               "--run-name", name)
    assert code == 0, err
    assert str(out) in stdout.replace("\n", "")


STATUS = st.one_of(JSONISH.map(lambda v: json.dumps(v).encode()), st.binary(max_size=40),
                   st.fixed_dictionaries({"state": st.sampled_from(["running", "submitted", "succeeded", "x"]),
                                          "job_id": JSONISH, "runner_pid": JSONISH, "pid": JSONISH,
                                          "log": JSONISH}).map(lambda d: json.dumps(d).encode()))


@settings(max_examples=100, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(content=STATUS)
def test_corrupt_status_json_in_run_and_submit(tmp_path_factory, monkeypatch, content):
    """A run directory whose status.json is anything at all: run and submit answer in one line or
    run; a directory that is not a rendered run (no launch.sh) is refused before anything is
    written. SLURM's silence is bounded (no real scheduler here: scontrol is absent)."""
    from runner import slurm

    monkeypatch.setattr(slurm, "UNANSWERED_S", 0.0)
    monkeypatch.setattr(slurm.shutil, "which", lambda name: None)
    tmp = tmp_path_factory.mktemp("run")
    (tmp / "status.json").write_bytes(content)
    before = sorted(p.name for p in tmp.iterdir())
    for argv in (("run", tmp), ("submit", tmp, "--no-follow")):
        code, _, err = ftplan(*argv)
        one_line_error(code, err)
    assert sorted(p.name for p in tmp.iterdir()) == before and (tmp / "status.json").read_bytes() == content


@FAST
@given(name=st.text(min_size=1, max_size=40).filter(lambda s: s not in (".", "..") and "/" not in s and "\x00" not in s))
def test_odd_run_directory_names(tmp_path_factory, name):
    import os

    tmp = tmp_path_factory.mktemp("odd")
    target = os.path.join(str(tmp), name)
    code, _, err = ftplan("render", "--model", "Llama-3.2-1B", "--gpu", "H100-SXM", "--data", DATA, "-o", target)
    one_line_error(code, err)
    left = [p for p in os.listdir(tmp) if p.startswith(".ftplan-render-")]
    assert not left
    if code == 2:
        assert os.listdir(tmp) == []
    else:
        assert os.path.isfile(os.path.join(target, "train.py"))


@FAST
@given(event=st.sampled_from(["start", "step", "eval", "checkpoint", "finished", 5, None]),
       fields=st.dictionaries(st.sampled_from(["step", "total_steps", "start_step", "loss", "eval_loss", "path",
                                               "tokens_per_s", "mem_reserved_gib"]), JSONISH, max_size=4))
def test_corrupt_metric_lines_are_text_never_a_crash(event, fields):
    """A line the script (or anything else) prints that looks like an event but is not one is
    shown as text; the runner and the display never fail on it."""
    from runner.events import LogLine, read_line

    metrics: list[dict] = []
    shown = read_line(json.dumps({"event": event, **fields}), metrics)
    if shown is not None and not isinstance(shown, LogLine):
        assert metrics and isinstance(getattr(shown, "step", 0), int)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    """A rendered run directory as a finished run leaves it (outputs and a succeeded status)."""
    run = tmp_path_factory.mktemp("finished") / "run"
    code, _, err = ftplan("render", "--model", "Llama-3.2-1B", "--gpu", "H100-SXM", "--data", DATA, "-o", run)
    assert code == 0, err
    (run / "metrics.jsonl").write_text('{"event": "step", "step": 1, "loss": 2.0}\n{"event": "finished"}\n')
    (run / "checkpoints").mkdir()
    (run / "status.json").write_text(json.dumps({"state": "succeeded", "exit_code": 0}))
    return run


def _snapshot(run: Path) -> dict[str, bytes]:
    return {str(p.relative_to(run)): p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file()}


@FAST
@given(extra=st.lists(st.sampled_from(["--resume", "--json", "--batch", "0", "nan", "--no-follow", "--plan", "-o",
                                       "--model", "x", "--gpu", "H100-SXM", "--data", "--allow-oom", "--sbatch-arg=--x"]),
                      max_size=4),
       command=st.sampled_from(["run", "submit", "render", "estimate", "data"]))
def test_a_finished_run_directory_is_never_changed(finished_run, extra, command):
    """Whatever is asked of a finished run's directory without --force, its files stay as they are."""
    before = _snapshot(finished_run)
    argv = {"run": ["run", finished_run], "submit": ["submit", finished_run, "--no-follow"],
            "render": ["render", "--plan", finished_run / "plan.toml", "-o", finished_run],
            "estimate": ["estimate", "--model", finished_run / "plan.toml"],
            "data": ["data", finished_run / "metrics.jsonl"]}[command]
    code, _, err = ftplan(*argv, *extra)
    one_line_error(code, err)
    assert _snapshot(finished_run) == before
