"""Dataset detection, row validation and length statistics."""

import json

import pytest

from planner import data
from planner.errors import DataError


@pytest.mark.parametrize("fmt,task", [("alpaca", "sft"), ("sharegpt", "sft"), ("messages", "sft"),
                                      ("completion", "sft"), ("preference", "dpo")])
def test_formats_are_detected_and_counted(dataset, fmt, task):
    stats = data.inspect(str(dataset(fmt, 40)), task=task)
    assert stats.format == fmt and stats.rows == 40
    assert stats.percentiles[50] <= stats.percentiles[99] <= stats.percentiles[100]
    assert "approximate" in stats.tokenizer
    assert 512 <= stats.recommended_max_length() <= 4096


def test_a_bad_row_is_named_by_line_and_field(tmp_path):
    p = tmp_path / "d.jsonl"
    rows = [{"instruction": "a", "output": "b"}] * 3 + [{"instruction": "a"}]
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(DataError, match=r"1 of 4 rows are invalid: line 4: missing field 'output'"):
        data.inspect(str(p))
    p.write_text('{"instruction": "a", "output": "b"}\n{broken\n')
    with pytest.raises(DataError, match="line 2: invalid JSON"):
        data.inspect(str(p))


def test_chat_rows_need_known_roles_and_an_assistant_turn(tmp_path):
    p = tmp_path / "c.jsonl"
    p.write_text(json.dumps({"messages": [{"role": "user", "content": "hi"}]}) + "\n")
    with pytest.raises(DataError, match="no assistant turn"):
        data.inspect(str(p))
    p.write_text(json.dumps({"conversations": [{"from": "robot", "value": "hi"}]}) + "\n")
    with pytest.raises(DataError, match="unknown from 'robot'"):
        data.inspect(str(p))


def test_task_and_format_must_agree(dataset):
    with pytest.raises(DataError, match="use --task dpo"):
        data.inspect(str(dataset("preference")), task="sft")


def test_real_tokenizer_is_used_when_the_model_is_local(dataset, tiny_model):
    stats = data.inspect(str(dataset("alpaca")), model_path=str(tiny_model))
    assert "tokenizer" in stats.tokenizer and "approximate" not in stats.tokenizer


def test_every_bad_row_is_reported_by_its_line_with_a_count(tmp_path):
    """All errors up to a limit, numbered by the file's own lines (blank lines counted), and how
    many in all; blank answers and empty assistant turns are errors, not valid rows."""
    p = tmp_path / "d.jsonl"
    good = json.dumps({"instruction": "a", "output": "b"})
    lines = [good, "", json.dumps({"instruction": "a", "output": "  "}), "[1, 2]"] + [json.dumps({"instruction": "x"})] * 12
    p.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError) as e:
        data.inspect(str(p))
    message = str(e.value)
    assert "14 of 15 rows are invalid" in message and "\n" not in message
    assert "line 3: field 'output' is empty" in message and "line 4: expected a JSON object" in message
    assert f"and {14 - data.MAX_REPORTED} more" in message
    p.write_text(json.dumps({"prompt": "q", "chosen": "\t ", "rejected": "no"}) + "\n")
    with pytest.raises(DataError, match="field 'chosen' is empty"):
        data.inspect(str(p), task="dpo")
    p.write_text(json.dumps({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": " "}]}) + "\n")
    with pytest.raises(DataError, match="empty assistant turn"):
        data.inspect(str(p))
