"""The caching-allocator simulator (bench/allocator_sim.py) against the allocator histories
recorded on the H100 and the H200 (bench/results/allocator-events/): every block lands where it really
did, and the mapped peak comes out to the byte."""

from pathlib import Path

import pytest

from bench import allocator_sim

EVENTS = sorted((Path(__file__).resolve().parents[2] / "bench" / "results" / "allocator-events").glob("*.json.gz"))
WORKSPACE = 32 * 2**20  # cuBLAS's workspace on the H100, one per thread that runs matmuls


def test_histories_cover_whole_and_half_block_holes():
    assert len(EVENTS) >= 6


@pytest.mark.parametrize("path", EVENTS, ids=lambda p: p.name)
def test_replay_reproduces_every_address_and_the_mapped_peak(path):
    events = allocator_sim.load(path)
    sim, moved = allocator_sim.replay(events)
    assert moved == 0
    assert sim.peak_mapped == allocator_sim.recorded_peak(events)


def test_best_fit_takes_a_hole_before_the_growable_tail():
    a = allocator_sim.Allocator()
    low = a.malloc(30 * 2**20)
    a.malloc(10 * 2**20)
    a.release(low)  # a 30 MiB hole below; the tail has 0 < free < 20 MiB
    assert a.malloc(5 * 2**20) == low


def test_the_backward_workspace_outlives_the_step_inside_the_logits_region():
    """Qwen2.5-0.5B LoRA b8, checkpointing (a whole fp32 block of slack): the backward
    thread's cuBLAS workspace, allocated once at the first backward matmul, stays where the
    first step's logits were and leaves too little below it for the next step's logits."""
    events = allocator_sim.load(next(p for p in EVENTS if p.name == "events-row3.json.gz"))
    large = allocator_sim.large_allocations(events)
    live = {}
    for action, addr, size, label in large:
        if action == "alloc":
            live[addr] = (size, label)
        else:
            live.pop(addr, None)
    logits = sorted(addr for action, addr, size, label in large
                    if action == "alloc" and label.startswith("modules/linear.py") and size > 2**32)
    workspace = [addr for addr, (size, label) in live.items() if size == WORKSPACE and label.startswith("(no Python")]
    assert len(workspace) == 1 and logits[0] < workspace[0] <= logits[1]
