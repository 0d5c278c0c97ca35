"""Replaying the caching allocator's history (bench/allocator.py) on a hand-made trace."""

from bench import allocator

MB = 2**20


def _f(file, line, name):
    return {"filename": file, "line": line, "name": name}


def trace():
    logits = [_f("/x/torch/nn/modules/module.py", 1, "_call_impl"), _f("/x/transformers/loss/loss_utils.py", 40, "ForCausalLMLoss"),
              _f("/run/train.py", 300, "run_loss")]
    grad = []
    ev = [
        {"action": "segment_map", "addr": 0, "size": 100 * MB},
        {"action": "alloc", "addr": 0, "size": 40 * MB, "frames": [_f("/run/train.py", 250, "load_model")]},
        {"action": "alloc", "addr": 40 * MB, "size": 30 * MB, "frames": logits},
        {"action": "alloc", "addr": 70 * MB, "size": 30 * MB, "frames": logits},
        {"action": "free_requested", "addr": 40 * MB, "size": 30 * MB},
        {"action": "free_completed", "addr": 40 * MB, "size": 30 * MB},
        # a 50 MB buffer does not fit the 30 MB hole: the mapping grows
        {"action": "segment_map", "addr": 100 * MB, "size": 50 * MB},
        {"action": "alloc", "addr": 100 * MB, "size": 50 * MB, "frames": grad},
        {"action": "free_completed", "addr": 100 * MB, "size": 50 * MB},
        {"action": "free_completed", "addr": 70 * MB, "size": 30 * MB},
    ]
    return {"device_traces": [ev], "segments": []}


def test_reserved_peak_holes_and_what_made_the_mapping_grow():
    s = allocator.summarize(trace())
    assert s["peak_mapped_bytes"] == 150 * MB
    assert s["peak_alloc_bytes"] == 120 * MB  # 40 + 30 + 50 after the free
    assert s["alloc_at_reserved_peak_bytes"] == 70 * MB  # the map comes before its alloc
    assert s["growth_trigger"] == {"bytes": 50 * MB, "label": "(no Python frame: autograd backward or C++)"}
    hole_sizes = [h["bytes"] for h in s["holes_at_reserved_peak"]]
    assert hole_sizes == [50 * MB, 30 * MB]
    last = s["holes_at_reserved_peak"][1]["last_held_by"][0]
    assert last["bytes"] == 30 * MB and last["label"].startswith("loss/loss_utils.py:40 ForCausalLMLoss")
    assert last["label"].endswith("train.py:300 run_loss")
    top = s["live_at_alloc_peak"]
    assert {g["label"]: g["bytes"] for g in top}["train.py:250 load_model"] == 40 * MB


def test_unmapped_memory_is_not_a_hole():
    t = trace()
    t["device_traces"][0].insert(6, {"action": "segment_unmap", "addr": 40 * MB, "size": 30 * MB})
    s = allocator.summarize(t)
    assert [h["bytes"] for h in s["holes_at_reserved_peak"]] == [50 * MB]


def test_label_prefers_library_frames_over_torch_plumbing():
    frames = [_f("/p/torch/nn/modules/module.py", 1, "_call_impl"), _f("/p/peft/tuners/lora/layer.py", 7, "forward")]
    assert allocator.label(frames) == "lora/layer.py:7 forward"
    assert allocator.label([]).startswith("(no Python frame")


def test_the_large_pools_last_growth_is_the_peak_that_is_explained():
    t = trace()
    ev = t["device_traces"][0]
    # everything freed, then a small allocation maps a new small-pool page: the overall
    # mapping peaks there, but the large pool's own peak is the 50 MB growth
    ev += [{"action": "free_completed", "addr": 0, "size": 40 * MB},
           {"action": "segment_map", "addr": 10_000 * MB, "size": 2 * MB},
           {"action": "alloc", "addr": 10_000 * MB, "size": 512, "frames": []}]
    s = allocator.summarize(t)
    assert s["peak_mapped_bytes"] == 152 * MB and s["large_pool_peak_mapped_bytes"] == 150 * MB
    assert s["growth_trigger"]["bytes"] == 50 * MB


def test_large_pool_history_keeps_large_events_in_order_with_labels():
    ev = trace()["device_traces"][0] + [{"action": "alloc", "addr": 200 * MB, "size": 4096, "frames": []}]
    kept = allocator.large_events(ev)
    assert [k[0] for k in kept] == ["segment_map", "alloc", "alloc", "alloc", "free_completed", "segment_map", "alloc",
                                    "free_completed", "free_completed"]  # free_requested and the 4 KiB block left out
    assert kept[2][1:3] == [40 * MB, 30 * MB] and kept[2][3].endswith("train.py:300 run_loss")
