"""Write ftplan's shipped demo datasets (runner/data/*.jsonl): small, our own, deterministic.

Tasks are simple string transformations that a tiny model can learn in a few dozen steps,
so the demo's loss visibly falls. Re-run to regenerate: python3 bench/make_datasets.py"""

import json
import random
from pathlib import Path

WORDS = ("apple banana cherry delta echo falcon garden harbor island jungle kettle lemon meadow "
         "nectar orange pepper quartz river silver tiger umbrella violet willow yellow zebra anchor "
         "breeze candle desert ember forest glacier hollow ivory jasmine lantern marble oasis pebble "
         "prairie raven shadow thunder valley wander").split()

TASKS = {
    "Repeat the words": lambda ws: " ".join(ws),
    "Reverse the order of the words": lambda ws: " ".join(reversed(ws)),
    "Give the first word": lambda ws: ws[0],
    "Give the last word": lambda ws: ws[-1],
    "Sort the words alphabetically": lambda ws: " ".join(sorted(ws)),
}


def main() -> None:
    rng = random.Random(7)
    out = Path(__file__).resolve().parent.parent / "runner" / "data"
    sft, dpo = [], []
    for i in range(320):
        task = rng.choice(list(TASKS))
        ws = rng.sample(WORDS, rng.randint(2, 5))
        answer = TASKS[task](ws)
        sft.append({"instruction": f"{task}.", "input": " ".join(ws), "output": answer})
        if i < 160:
            wrong = TASKS[rng.choice([t for t in TASKS if TASKS[t](ws) != answer] or list(TASKS))](ws)
            if wrong == answer:
                wrong = " ".join(rng.sample(WORDS, len(ws)))
            dpo.append({"prompt": f"{task}: {' '.join(ws)}", "chosen": answer, "rejected": wrong})
    for name, rows in (("instructions.jsonl", sft), ("preferences.jsonl", dpo)):
        (out / name).write_text("".join(json.dumps(r) + "\n" for r in rows))
        print(f"wrote {len(rows)} rows to {out / name}")


if __name__ == "__main__":
    main()
