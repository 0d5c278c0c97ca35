"""knowledge/speed.toml's [ops] table against a recount of the dispatched ops (bench/census.py
--ops, tiny models on the CPU): the eager dispatch term of the step-time model counts these."""

import pytest

pytest.importorskip("peft")

from bench import census  # noqa: E402
from planner import knowledge  # noqa: E402


@pytest.mark.parametrize("name,family", [("Llama-3.2-1B", "llama"), ("Pythia-1B", "gpt_neox")])
def test_the_ops_table_is_what_the_census_counts(name, family):
    ops = knowledge.table("speed")["ops"]
    counted = census.ops_per_layer(name)
    for key, value in ops[family].items():
        assert counted[key] == value, key
    for key, value in ops["adapter"].items():  # one row for all families: they differ by up to one op
        assert counted[key] == pytest.approx(value, abs=1.0), key
