"""Shared fixtures: a tiny Llama-shaped model and tokenizer built locally (no download),
and the shipped datasets converted to every format."""

import json
import os
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("NO_COLOR", "1")
# inventories of configs built from the model's code are cached; the suite keeps its own
os.environ.setdefault("FTPLAN_CACHE", tempfile.mkdtemp(prefix="ftplan-cache-"))


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    pytest.importorskip("torch")
    from runner.tiny import build_tiny

    return build_tiny(tmp_path_factory.mktemp("tiny") / "model")


def _instructions(n=48):
    rows = [json.loads(l) for l in (ROOT / "runner/data/instructions.jsonl").read_text().splitlines()]
    return rows[:n]


def convert(fmt: str, rows: list[dict]) -> list[dict]:
    """The shipped alpaca rows in another SFT format."""
    out = []
    for r in rows:
        user = f"{r['instruction']} {r['input']}".strip()
        if fmt == "alpaca":
            out.append(r)
        elif fmt == "sharegpt":
            out.append({"conversations": [{"from": "human", "value": user}, {"from": "gpt", "value": r["output"]}]})
        elif fmt == "messages":
            out.append({"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": user},
                                     {"role": "assistant", "content": r["output"]}]})
        elif fmt == "completion":
            out.append({"text": f"{user} => {r['output']}"})
    return out


@pytest.fixture
def dataset(tmp_path):
    """dataset(fmt) -> path of a small JSONL file in that format."""

    def make(fmt: str, n: int = 48) -> Path:
        if fmt == "preference":
            rows = [json.loads(l) for l in (ROOT / "runner/data/preferences.jsonl").read_text().splitlines()][:n]
        else:
            rows = convert(fmt, _instructions(n))
        path = tmp_path / f"{fmt}.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        return path

    return make


def logged_steps(run_dir: Path) -> list[int]:
    """The step numbers a run's metrics.jsonl holds, in order."""
    events = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [e["step"] for e in events if e.get("event") == "step"]


@pytest.fixture
def resume_to_the_end():
    """resume(run_dir, stopped): a run stopped at step `stopped` (of MAX_STEPS = 400) resumes
    with two more steps to go and reaches the end with every step logged once, in order."""
    from runner import process

    def resume(run_dir: Path, stopped: int) -> None:
        train = run_dir / "train.py"
        train.write_text(train.read_text().replace("MAX_STEPS = 400", f"MAX_STEPS = {stopped + 2}"))
        assert list(process.run(run_dir, resume=True))[-1].state == "succeeded", (run_dir / "stderr.log").read_text()[-3000:]
        assert logged_steps(run_dir) == list(range(1, stopped + 3))  # contiguous, none twice

    return resume
