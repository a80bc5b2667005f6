"""bench_erasure's comparison of batched training rows with their batch-1 rows (a pure function over rows)."""

from benchmarks.bench_erasure import ROWS, batch1_name, batch_vs_one
from erasure.methods import ap, esd


def test_each_batched_row_is_compared_with_its_own_methods_batch1_row():
    byname = {"AP (fast)": {"wall_s": 60.0, "esr1": 99.0, "psr1": 98.0},
              "ESD (fast)": {"wall_s": 20.0, "esr1": 90.0, "psr1": 95.0},
              "AP (fast, batch 4 x 150 steps)": {"wall_s": 30.0, "esr1": 97.0, "psr1": 99.0},
              "ESD (fast, batch 4 x 50 steps)": {"wall_s": 10.0, "esr1": 80.0, "psr1": 96.5},
              "AP (fast, batch 4 x 300 steps)": {"wall_s": 90.0, "esr1": 99.0, "psr1": 98.0}}
    out = batch_vs_one(byname)
    assert set(out) == {"AP (fast, batch 4 x 150 steps)", "ESD (fast, batch 4 x 50 steps)", "AP (fast, batch 4 x 300 steps)"}
    assert out["AP (fast, batch 4 x 150 steps)"] == {"wall_over_batch1": 0.5, "esr1_diff": -2.0, "psr1_diff": 1.0}
    assert out["ESD (fast, batch 4 x 50 steps)"] == {"wall_over_batch1": 0.5, "esr1_diff": -10.0, "psr1_diff": 1.5}
    assert out["AP (fast, batch 4 x 300 steps)"]["wall_over_batch1"] == 1.5


def test_a_batched_row_without_its_batch1_row_in_the_run_is_left_out():
    assert batch_vs_one({"AP (fast, batch 4 x 150 steps)": {"wall_s": 1.0, "esr1": 1.0, "psr1": 1.0}}) == {}


def test_every_batched_row_names_a_batch1_row_of_the_benchmark_and_trains_on_the_same_or_more_rows():
    names = {r[0] for r in ROWS}
    steps = {"ESD (fast)": esd.PRESETS["fast"]["steps"], "AP (fast)": ap.PRESETS["fast"]["steps"]}
    batched = [(batch1_name(name), overrides) for name, _, _, overrides in ROWS if batch1_name(name)]
    assert len(batched) == 4
    for one, overrides in batched:
        assert one in names and overrides["batch"] * overrides["steps"] >= steps[one]
