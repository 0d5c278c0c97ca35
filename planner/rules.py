"""Evaluate the rule tables of knowledge/: for each setting, the first rule whose `when`
matches the facts of the plan. Rules are data; this module only matches them."""

from __future__ import annotations

from dataclasses import dataclass

from planner import knowledge


@dataclass(frozen=True)
class Recommendation:
    setting: str
    value: object
    rule_id: str
    why: str
    source: str
    also_considered: tuple[str, ...] = ()   # overridden rules: "id: value (resolution)"

    def as_dict(self) -> dict:
        return {"setting": self.setting, "value": self.value, "rule": self.rule_id, "why": self.why,
                "source": self.source, "also_considered": list(self.also_considered)}


def matches(when: dict, facts: dict) -> bool:
    """`when` matches if every key holds: a list means membership, *_min / *_max bound a
    numeric fact (inclusive), anything else is equality. A fact that is unknown (None)
    fails a bound and an equality."""
    for key, want in when.items():
        if key.endswith("_min") or key.endswith("_max"):
            have = facts.get(key[:-4])
            if have is None:
                return False
            if key.endswith("_min") and have < want:
                return False
            if key.endswith("_max") and have > want:
                return False
        elif isinstance(want, list):
            if facts.get(key) not in want:
                return False
        elif facts.get(key) != want:
            return False
    return True


def candidates(setting: str, table: str = "hyperparams") -> list[dict]:
    return [r for r in knowledge.rows(table, "rule") if r["sets"] == setting]


def evaluate(setting: str, facts: dict, values: dict | None = None, table: str = "hyperparams") -> Recommendation | None:
    """The first applicable rule for `setting`. `values` holds settings already decided
    (for rules with value_from, e.g. alpha = 2 x rank)."""
    rows = candidates(setting, table)
    overridden = [r for r in rows if r.get("overridden_by") and matches(r.get("when", {}), facts)]
    for rule in rows:
        if rule.get("overridden_by") or rule.get("needs_fit") or not matches(rule.get("when", {}), facts):
            continue
        value = rule.get("value")
        if "value_from" in rule:
            ref = rule["value_from"]
            value = (values or {})[ref["setting"]] * ref["factor"]
        also = tuple(
            f"{o['id']}: {o.get('value')} ({o['source'].split(' ')[0]}) - not applied: {o['resolution']}"
            for o in overridden if o["overridden_by"] == rule["id"]
        )
        return Recommendation(setting, value, rule["id"], rule["why"], rule["source"], also)
    return None


def rule(rule_id: str, table: str = "hyperparams") -> dict:
    for r in knowledge.rows(table, "rule"):
        if r["id"] == rule_id:
            return r
    raise KeyError(rule_id)
