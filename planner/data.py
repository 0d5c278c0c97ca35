"""Datasets: detect the format of a JSON/JSONL file, validate every row, and report counts
and token-length percentiles. Formats and their required fields are knowledge/methods.toml's
[[format]] rows; the rendered train.py reads the same formats."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from planner import knowledge
from planner.errors import DataError

# Without the model's tokenizer, a token is taken as 4 characters of English text (OpenAI
# tokenizer guide's rule of thumb); the report says when it is this approximation.
CHARS_PER_TOKEN = 4.0
PERCENTILES = (50, 90, 95, 99, 100)


def formats() -> dict[str, dict]:
    return {f["id"]: f for f in knowledge.rows("methods", "format")}


@dataclass(frozen=True)
class DataStats:
    path: str
    format: str
    task: str
    rows: int
    percentiles: dict            # percentile -> tokens
    tokenizer: str               # the tokenizer used, or "approximate (4 chars/token)"
    tokens: int = 0              # every row's tokens, summed

    def recommended_max_length(self) -> int:
        from planner import rules

        r = rules.rule("max_length.data")
        p = self.percentiles.get(r["percentile"], max(self.percentiles.values()))
        low, high = r["clamp"]
        step = r["round_to"]
        return int(min(high, max(low, math.ceil(p / step) * step)))

    def as_dict(self) -> dict:
        return {"path": self.path, "format": self.format, "task": self.task, "rows": self.rows,
                "tokens": self.tokens, "token_percentiles": self.percentiles, "tokenizer": self.tokenizer,
                "recommended_max_length": self.recommended_max_length()}


MAX_REPORTED = 10  # bad rows named in one error; the rest are counted


def _report(path: str, unit: str, errors: list[tuple[int, str]], total: int) -> None:
    """One line for every bad row found (the first MAX_REPORTED named with their line), or nothing."""
    if not errors:
        return
    named = "; ".join(f"{unit} {n}: {msg}" for n, msg in errors[:MAX_REPORTED])
    more = f"; and {len(errors) - MAX_REPORTED} more" if len(errors) > MAX_REPORTED else ""
    raise DataError(f"{path}: {len(errors)} of {total} rows are invalid: {named}{more}")


def read_rows(path: str | Path) -> tuple[list[dict], str, list[int]]:
    """Every row of a .json (a list of objects) or .jsonl file, how rows are counted ("line" or
    "item") and each row's line (or item) number; DataError names the bad ones."""
    try:
        p = Path(path).expanduser()
        found = p.is_file()
    except (RuntimeError, OSError, ValueError):  # no such ~user, a name too long, a NUL
        p, found = Path(path), False
    if not found:
        raise DataError(f"{p}: no such dataset file; give a local .json or .jsonl file")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise DataError(f"{p}: not UTF-8 text (byte {e.start}); save it as UTF-8 JSON or JSONL") from None
    stripped = text.lstrip()
    if stripped.startswith("["):
        try:
            rows = json.loads(text)
        except json.JSONDecodeError as e:
            raise DataError(f"{p}: line {e.lineno}: invalid JSON ({e.msg})") from None
        except (RecursionError, ValueError) as e:  # nesting too deep, an integer too long to read
            raise DataError(f"{p}: cannot be read as rows ({str(e)[:80]})") from None
        numbered = list(enumerate(rows, start=1))
        unit = "item"
    else:
        numbered = []
        for n, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                numbered.append((n, json.loads(line)))
            except json.JSONDecodeError as e:
                raise DataError(f"{p}: line {n}: invalid JSON ({e.msg}); each line must be one JSON object") from None
            except (RecursionError, ValueError) as e:
                raise DataError(f"{p}: line {n}: cannot be read as a row ({str(e)[:80]})") from None
        unit = "line"
    if not numbered:
        raise DataError(f"{p}: the file has no rows")
    if not any(isinstance(row, dict) for _, row in numbered):
        raise DataError(f"{p}: no row is a JSON object; each row must be one object such as "
                        '{"instruction": ..., "output": ...}')
    return [row for _, row in numbered], unit, [n for n, _ in numbered]


def detect_format(row: dict) -> str:
    """The format whose required fields the first row has (most specific first)."""
    order = ("preference", "sharegpt", "messages", "alpaca", "completion")
    for fid in order:
        if all(k in row for k in formats()[fid]["required"]):
            return fid
    keys = ", ".join(repr(k)[:24] for k in sorted(row)[:8]) or "none"
    raise DataError(f"cannot tell the dataset format from the first row's fields ({keys}); expected alpaca "
                    "(instruction/output), sharegpt (conversations), messages, completion (text) or preference "
                    "(prompt/chosen/rejected), or pass --data-format")


def _turn_errors(turns, fmt: dict) -> list[str]:
    key_role, key_text = fmt["turn_keys"]
    if not isinstance(turns, list) or not turns:
        return [f"'{fmt['required'][0]}' must be a non-empty list of turns"]
    assistant = False
    for i, t in enumerate(turns):
        if not isinstance(t, dict) or key_role not in t or key_text not in t:
            return [f"turn {i + 1} needs '{key_role}' and '{key_text}'"]
        role = fmt["roles"].get(t[key_role]) if isinstance(t[key_role], str) else None
        if role is None:
            return [f"turn {i + 1} has unknown {key_role} {str(t[key_role])[:20]!r}; use one of {', '.join(fmt['roles'])}"]
        if not isinstance(t[key_text], str):
            return [f"turn {i + 1} '{key_text}' must be a string"]
        if role == "assistant" and not t[key_text].strip():
            return [f"turn {i + 1} is an empty assistant turn: nothing to train on"]
        assistant = assistant or role == "assistant"
    return [] if assistant else ["no assistant turn to train on"]


def row_errors(row: dict, fmt_id: str) -> list[str]:
    """What is wrong with one row of a format (empty when it is valid)."""
    if not isinstance(row, dict):
        return [f"expected a JSON object, got {type(row).__name__}"]
    fmt = formats()[fmt_id]
    missing = [k for k in fmt["required"] if k not in row]
    if missing:
        return [f"missing field '{missing[0]}' ({fmt['name']} rows need {', '.join(fmt['required'])})"]
    if "turn_keys" in fmt:
        return _turn_errors(row[fmt["required"][0]], fmt)
    for key in fmt["required"] + [k for k in fmt.get("optional", ()) if k in row]:
        if not isinstance(row[key], str):
            return [f"field '{key}' must be a string, got {type(row[key]).__name__}"]
    # the text that is trained on (the answer, both preference answers) must not be blank
    trained = ["chosen", "rejected"] if fmt_id == "preference" else [fmt["required"][-1]]
    blank = [k for k in trained + ["prompt" if fmt_id == "preference" else ""] if k and not row[k].strip()]
    return [f"field '{blank[0]}' is empty"] if blank else []


def validate_rows(rows: list[dict], fmt_id: str, path: str, unit: str = "line", numbers: list[int] | None = None) -> None:
    """Every row checked; one DataError naming the bad rows (up to MAX_REPORTED) and their count."""
    numbers = numbers or list(range(1, len(rows) + 1))
    errors = [(n, e[0]) for n, row in zip(numbers, rows) if (e := row_errors(row, fmt_id))]
    _report(path, unit, errors, len(rows))


def row_text(row: dict, fmt_id: str) -> str:
    """All text of a row, for length statistics."""
    fmt = formats()[fmt_id]
    if "turn_keys" in fmt:
        return "\n".join(t[fmt["turn_keys"][1]] for t in row[fmt["required"][0]])
    if fmt_id == "preference":
        return row["prompt"] + "\n" + max(row["chosen"], row["rejected"], key=len)
    return "\n".join(str(row[k]) for k in fmt["required"] + list(fmt.get("optional", ())) if k in row)


def _percentiles(values: list[int]) -> dict:
    s = sorted(values)
    return {p: s[min(len(s) - 1, max(0, math.ceil(p / 100 * len(s)) - 1))] for p in PERCENTILES}


def _local_tokenizer(model_path: str | None):
    """The model's tokenizer when it is on disk (transformers imported only here)."""
    if not model_path or not (Path(model_path) / "tokenizer_config.json").is_file():
        return None
    try:
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(model_path)
    except Exception:
        return None


def inspect(path: str, task: str = "sft", data_format: str = "auto", model_path: str | None = None) -> DataStats:
    rows, unit, numbers = read_rows(path)
    fmt_id = detect_format(next(r for r in rows if isinstance(r, dict))) if data_format == "auto" else data_format
    if fmt_id not in formats():
        raise DataError(f"unknown --data-format {fmt_id!r}")
    want = formats()[fmt_id]["task"]
    if want != task:
        raise DataError(f"{path}: {formats()[fmt_id]['name']} data is for {want.upper()}, not {task.upper()}; "
                        f"use --task {want} or a {'preference' if task == 'dpo' else 'instruction'} dataset")
    validate_rows(rows, fmt_id, str(path), unit, numbers)
    tok = _local_tokenizer(model_path)
    texts = [row_text(r, fmt_id) for r in rows]
    if tok is not None:
        lengths = [len(tok(t)["input_ids"]) for t in texts]
        name = f"{model_path} tokenizer"
    else:
        lengths = [max(1, math.ceil(len(t) / CHARS_PER_TOKEN)) for t in texts]
        name = f"approximate ({CHARS_PER_TOKEN:g} chars/token; no local tokenizer)"
    return DataStats(str(path), fmt_id, task, len(rows), _percentiles(lengths), name, sum(lengths))
