"""Where a run's reserved GPU memory goes at its peak: the caching allocator's own history
(`torch.cuda.memory._record_memory_history`), replayed.

NVML's peak is torch's reserved peak plus the CUDA context; the estimator predicts allocated
memory well, so what is left to understand is the gap between reserved and allocated: free
holes inside mapped memory at the moment the mapping was largest. This module finds that
moment, lists the holes with the tensors that last lived in them, and the allocation that
made the mapping grow.

Used without touching the script: bench/memtrace/sitecustomize.py calls `install` when
FTPLAN_MEMTRACE names an output file, and the summary is written when the process exits
(`python3 bench/memory.py --trace ...`)."""

from __future__ import annotations

import json
from pathlib import Path

MAP = ("segment_alloc", "segment_map")
UNMAP = ("segment_free", "segment_unmap")
MAX_ENTRIES = 3_000_000
# Frames of torch's own plumbing say nothing about which tensor this is.
PLUMBING = ("torch/nn/modules/module.py", "torch/_tensor.py", "torch/utils/", "torch/autograd/", "torch/_dynamo/",
            "torch/_ops.py", "torch/overrides.py", "contextlib.py", "functools.py", "sitecustomize.py")


def label(frames: list[dict]) -> str:
    """The innermost frame that is not torch's plumbing, and the training script's line."""
    if not frames:
        return "(no Python frame: autograd backward or C++)"
    parts = []
    for f in frames:
        name = f.get("filename", "")
        if not any(p in name for p in PLUMBING):
            short = "train.py" if name.endswith("train.py") else "/".join(name.split("/")[-2:])
            parts.append(f"{short}:{f.get('line')} {f.get('name')}")
            break
    script = next((f for f in frames if f.get("filename", "").endswith("train.py")), None)
    if script is not None:
        parts.append(f"train.py:{script.get('line')} {script.get('name')}")
    return " <- ".join(dict.fromkeys(parts)) or f"{frames[0].get('filename')}:{frames[0].get('line')}"


SMALL_BLOCK = 2**20  # the caching allocator serves requests below 1 MiB from its small pool


def small_pool_maps(events: list[dict]) -> set[int]:
    """Indices of the mapping events that serve the small pool: the small and large pools
    grow separate segments, told apart by the sizes of the blocks allocated inside them."""
    import bisect

    maps = sorted((e["addr"], e["addr"] + e["size"], i) for i, e in enumerate(events) if e["action"] in MAP)
    starts = [m[0] for m in maps]
    small = set()
    for e in events:
        if e["action"] != "alloc":
            continue
        k = bisect.bisect_right(starts, e["addr"]) - 1
        if k >= 0 and maps[k][0] <= e["addr"] < maps[k][1] and e["size"] < SMALL_BLOCK:
            small.add(maps[k][2])
    return small


def _peaks(events: list[dict], skip: set[int] = frozenset()) -> tuple[int, int, int, int]:
    """(event, bytes) of the largest mapping (events in `skip` not counted) and of the
    largest allocated total."""
    mapped = alloc = 0
    peak_m = peak_a = (-1, 0)
    for i, e in enumerate(events):
        a = e["action"]
        if a == "alloc":
            alloc += e["size"]
        elif a == "free_completed":
            alloc -= e["size"]
        elif a in MAP and i not in skip:
            mapped += e["size"]
        elif a in UNMAP and e["size"] >= SMALL_BLOCK:
            mapped -= e["size"]
        if alloc > peak_a[1]:
            peak_a = (i, alloc)
        if mapped > peak_m[1]:
            peak_m = (i, mapped)
    return peak_m[0], peak_m[1], peak_a[0], peak_a[1]


def _replay(events: list[dict], upto: int, min_block: int):
    """Live blocks, mapped ranges and freed large blocks after events[0..upto]."""
    live, ranges, freed = {}, [], []
    for i, e in enumerate(events[: upto + 1]):
        a = e["action"]
        if a == "alloc":
            live[e["addr"]] = (e["size"], label(e.get("frames", [])), i)
        elif a == "free_completed":
            size, lab, _ = live.pop(e["addr"], (e["size"], "(allocated before recording)", -1))
            if size >= min_block:
                freed.append((e["addr"], size, lab, i))
        elif a in MAP:
            ranges.append((e["addr"], e["addr"] + e["size"]))
        elif a in UNMAP:
            ranges = _subtract(ranges, (e["addr"], e["addr"] + e["size"]))
    return live, ranges, freed


def _subtract(ranges, cut):
    out = []
    for lo, hi in ranges:
        if hi <= cut[0] or lo >= cut[1]:
            out.append((lo, hi))
            continue
        if lo < cut[0]:
            out.append((lo, cut[0]))
        if hi > cut[1]:
            out.append((cut[1], hi))
    return out


def _merge(ranges):
    out = []
    for lo, hi in sorted(ranges):
        if out and lo <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return out


def holes(ranges, live: dict, min_bytes: int) -> list[tuple[int, int]]:
    """Free stretches inside mapped memory, largest first."""
    blocks = sorted((addr, addr + size) for addr, (size, _, _) in live.items())
    out = []
    for lo, hi in _merge(ranges):
        cursor = lo
        for b0, b1 in blocks:
            if b1 <= lo or b0 >= hi:
                continue
            if b0 > cursor:
                out.append((cursor, b0))
            cursor = max(cursor, b1)
        if hi > cursor:
            out.append((cursor, hi))
    return sorted((h for h in out if h[1] - h[0] >= min_bytes), key=lambda h: h[0] - h[1])


def census(live: dict, top: int) -> list[dict]:
    groups: dict[str, list[int]] = {}
    for size, lab, _ in live.values():
        g = groups.setdefault(lab, [0, 0])
        g[0] += size
        g[1] += 1
    ranked = sorted(groups.items(), key=lambda kv: -kv[1][0])[:top]
    return [{"label": k, "bytes": v[0], "count": v[1]} for k, v in ranked]


def summarize(snapshot: dict, device: int = 0, top: int = 12, min_block: int = 2**20) -> dict:
    """The reserved peak and the allocated peak, what was live at each, and the holes."""
    events = snapshot["device_traces"][device]
    k, mapped, j, allocated = _peaks(events)
    large_k, large_mapped, _, _ = _peaks(events, small_pool_maps(events))
    out = {"events": len(events), "truncated": len(events) >= MAX_ENTRIES,
           "peak_mapped_bytes": mapped, "peak_alloc_bytes": allocated,
           "reserved_peak_event": k, "alloc_peak_event": j,
           "large_pool_peak_mapped_bytes": large_mapped, "large_pool_peak_event": large_k}
    # the large pool's last growth is what the holes explain; the small pool adds megabytes
    k = large_k if large_k >= 0 else k
    if k < 0:
        return out
    live, ranges, freed = _replay(events, k, min_block)
    trigger = next((e for e in events[k + 1:] if e["action"] == "alloc"), None)
    out["alloc_at_reserved_peak_bytes"] = sum(s for s, _, _ in live.values())
    out["growth_trigger"] = None if trigger is None else {"bytes": trigger["size"], "label": label(trigger.get("frames", []))}
    found = []
    for h0, h1 in holes(ranges, live, min_block)[:top]:
        owners = sorted((f for f in freed if f[0] < h1 and f[0] + f[1] > h0), key=lambda f: -f[3])[:3]
        found.append({"bytes": h1 - h0, "last_held_by": [
            {"bytes": size, "label": lab, "events_before_peak": k - i} for _, size, lab, i in owners]})
    out["holes_at_reserved_peak"] = found
    out["live_at_reserved_peak"] = census(live, top)
    live_a, _, _ = _replay(events, j, min_block)
    out["live_at_alloc_peak"] = census(live_a, top)
    return out


def large_events(events: list[dict]) -> list[list]:
    """The large pool's history in a compact form, for replaying it offline: one
    [action, addr, size, label] per allocation, free or mapping of 1 MiB or more."""
    keep = ("alloc", "free_completed") + MAP + UNMAP
    return [[e["action"], e["addr"], e["size"], label(e.get("frames", []))]
            for e in events if e["action"] in keep and e["size"] >= SMALL_BLOCK]


def install(path: str, events_path: str | None = None) -> None:
    """Record the allocator's history from now on; summarize it into `path` at exit, and
    with `events_path` write the large pool's history there too (gzipped JSON)."""
    import atexit

    import torch

    torch.cuda.memory._record_memory_history(max_entries=MAX_ENTRIES, context="alloc", stacks="python")

    def dump():
        try:
            snapshot = torch.cuda.memory._snapshot()
            summary = summarize(snapshot)
            if events_path:
                import gzip

                with gzip.open(events_path, "wt") as f:
                    json.dump(large_events(snapshot["device_traces"][0]), f)
        except Exception as e:  # the run's own result matters more than its trace
            summary = {"error": repr(e)[:500]}
        Path(path).write_text(json.dumps(summary))

    atexit.register(dump)
