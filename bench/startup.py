"""Wall time of `ftplan estimate` and `ftplan --help` (the planner's start-up path: no torch),
and of the wizard until its first screen is on (headless Textual, 80 x 24).

    python3 bench/startup.py > bench/results/startup-cpu.json

Median of 15 runs each, after 2 warm-ups, on this machine (CI-sized: 2 cores)."""

import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time

COMMANDS = {
    "estimate": ["ftplan", "estimate", "--model", "Llama-3.1-8B", "--method", "qlora", "--batch", "4", "--grad-ckpt",
                 "--gpu", "H100-SXM", "--json"],
    "estimate_text": ["ftplan", "estimate", "--model", "Llama-3.1-8B", "--method", "lora", "--gpu", "L4"],
    "help": ["ftplan", "--help"],
    # the process starts, imports the wizard, mounts the checklist screen and exits
    "tui_first_screen": [sys.executable, "-c", (
        "import asyncio\n"
        "from planner.tui.app import FtplanApp\n"
        "async def go():\n"
        "    app = FtplanApp()\n"
        "    async with app.run_test(size=(80, 24)) as pilot:\n"
        "        await pilot.pause()\n"
        "        assert type(app.screen).__name__ == 'ChecklistScreen'\n"
        "asyncio.run(go())\n")],
}


def main():
    exe = shutil.which("ftplan")
    results = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
               "python": platform.python_version(), "ftplan": exe, "runs": 15}
    for name, cmd in COMMANDS.items():
        times = []
        for i in range(17):
            t0 = time.perf_counter()
            subprocess.run(cmd, capture_output=True, check=True)
            if i >= 2:
                times.append(time.perf_counter() - t0)
        results[f"{name}_median_s"] = round(statistics.median(times), 3)
        results[f"{name}_max_s"] = round(max(times), 3)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
