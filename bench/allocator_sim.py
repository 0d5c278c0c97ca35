"""PyTorch's CUDA caching allocator with expandable segments (the scripts' setting), large
pool only, simulated: replaying a run's recorded allocations and frees
(bench/results/allocator-events/, made by `bench/memory.py --trace --events-dir`) through it
reproduces the run's own block addresses and its mapped peak to the byte.

The rules, from c10/cuda/CUDACachingAllocator.cpp (torch 2.11):
- best fit: the smallest free block that holds the request, lowest address first; but a free
  block that can grow into unmapped space counts as that large (get_free_block's
  expandable_size), so the mapped tail is taken only when no hole fits;
- a block is split whenever at least 512 bytes remain (should_split, expandable segments);
- when nothing fits, the free tail grows by mapping 20 MiB pages (kLargeBuffer) at the end;
- a freed block merges with free neighbours; nothing is unmapped during training."""

from __future__ import annotations

import bisect
import gzip
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.allocator import MAP, SMALL_BLOCK  # noqa: E402

PAGE = 20 * 2**20
MIN_SPLIT = 512
UNMAPPED = 1 << 60  # what a block that borders unmapped space counts as, for best fit


class Allocator:
    def __init__(self) -> None:
        self.blocks: dict[int, list] = {}  # address -> [size, allocated]
        self.addrs: list[int] = []
        self.free: list[tuple[int, int]] = []  # (size, address) of free mapped blocks
        self.mapped = 0
        self.peak_mapped = 0

    def _expandable(self, j: int) -> int:
        size, addr = self.free[j]
        return size + (UNMAPPED if addr + size == self.mapped else 0)

    def malloc(self, size: int) -> int:
        i = bisect.bisect_left(self.free, (size, -1))
        if i < len(self.free):
            while i + 1 < len(self.free) and self._expandable(i + 1) < self._expandable(i):
                i += 1
            have, addr = self.free.pop(i)
        else:
            addr, have = self.mapped, 0
            if self.addrs and not self.blocks[self.addrs[-1]][1]:  # the free tail grows
                addr = self.addrs[-1]
                have = self.blocks[addr][0]
                self.free.remove((have, addr))
            else:
                bisect.insort(self.addrs, addr)
            self.mapped += -(-(size - have) // PAGE) * PAGE
            self.peak_mapped = max(self.peak_mapped, self.mapped)
            have = self.mapped - addr
        if have - size >= MIN_SPLIT:
            rest = addr + size
            self.blocks[rest] = [have - size, False]
            bisect.insort(self.addrs, rest)
            bisect.insort(self.free, (have - size, rest))
            have = size
        self.blocks[addr] = [have, True]
        return addr

    def release(self, addr: int) -> None:
        size = self.blocks[addr][0]
        i = bisect.bisect_left(self.addrs, addr)
        if i + 1 < len(self.addrs) and not self.blocks[self.addrs[i + 1]][1]:
            nxt = self.addrs.pop(i + 1)
            size += self.blocks.pop(nxt)[0]
            self.free.remove((size - self.blocks[addr][0], nxt))
        if i > 0 and not self.blocks[self.addrs[i - 1]][1]:
            prev = self.addrs[i - 1]
            self.free.remove((self.blocks[prev][0], prev))
            del self.blocks[addr]
            self.addrs.pop(i)
            size += self.blocks[prev][0]
            addr = prev
        self.blocks[addr] = [size, False]
        bisect.insort(self.free, (size, addr))

    def live(self) -> list[tuple[int, int]]:
        return [(a, self.blocks[a][0]) for a in self.addrs if self.blocks[a][1]]


def load(path: Path) -> list[list]:
    with gzip.open(path, "rt") as f:
        return json.load(f)


def large_allocations(events: list[list]) -> list[list]:
    """Allocations and frees of the large pool (requests up to 1 MiB go to the small pool)."""
    return [e for e in events if e[0] in ("alloc", "free_completed") and e[2] > SMALL_BLOCK]


def replay(events: list[list]) -> tuple[Allocator, int]:
    """Run a recorded history through the simulator: (the allocator after it, how many
    allocations landed at another offset from the segment's start than they really did)."""
    sim = Allocator()
    large = large_allocations(events)
    base = min(e[1] for e in large if e[0] == "alloc")
    where: dict[int, int] = {}
    moved = 0
    for action, addr, size, _ in large:
        if action == "alloc":
            where[addr] = sim.malloc(size)
            moved += where[addr] != addr - base
        elif addr in where:
            sim.release(where.pop(addr))
    return sim, moved


def recorded_peak(events: list[list]) -> int:
    """The large pool's mapped bytes at the end of the run, from its own mapping events (the
    small pool maps 2 MiB pages in a segment of its own)."""
    return sum(e[2] for e in events if e[0] in MAP and e[2] != 2 * SMALL_BLOCK)


if __name__ == "__main__":  # python3 bench/allocator_sim.py bench/results/allocator-events/*.json.gz
    for name in sys.argv[1:]:
        ev = load(Path(name))
        sim, moved = replay(ev)
        print(f"{Path(name).name}: simulated peak {sim.peak_mapped / 2**30:.3f} GiB, recorded "
              f"{recorded_peak(ev) / 2**30:.3f} GiB, {moved} allocations placed elsewhere")
