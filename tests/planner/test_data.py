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
    with pytest.raises(DataError, match=r"row 4: missing field 'output'"):
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
