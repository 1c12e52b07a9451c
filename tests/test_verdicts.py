"""The verdict rules on hand-made results: a difference inside the noise is inconclusive, a large
one held or reversed, near-chance ones untestable; intervals against scipy's own."""

import math

import numpy as np
import pytest
from scipy import stats

from puzzle_core.verdicts import (
    NoiseFloor,
    bootstrap_interval,
    chance_error,
    estimate,
    judge,
    judge_samples,
    load_noise_floors,
    save_noise_floors,
)

FLOOR = NoiseFloor("small", "top1_err", sd=1.0, seeds=5, row="table2/vanilla", provenance="test")


def test_estimate_is_the_student_t_interval():
    vals = [30.1, 31.5, 29.2, 30.8]
    est = estimate(vals)
    low, high = stats.t.interval(0.95, len(vals) - 1, loc=np.mean(vals), scale=stats.sem(vals))
    assert est.mean == pytest.approx(np.mean(vals))
    assert est.mean - est.half_width == pytest.approx(low)
    assert est.mean + est.half_width == pytest.approx(high)
    assert estimate([3.0]).half_width is None
    with pytest.raises(ValueError, match="values"):
        estimate([])


def test_large_paired_difference_is_held_and_the_reverse_reversed():
    pm = {0: 30.0, 1: 31.0, 2: 29.5}
    base = {0: 35.0, 1: 36.2, 2: 34.1}
    v = judge(pm, base, chance=90.0, paired=True)
    assert v.verdict == "held" and v.difference == pytest.approx(-4.9333, abs=1e-3)
    assert v.high < 0 and "paired over seeds 0,1,2" in v.basis
    assert judge(base, pm, chance=90.0, paired=True).verdict == "reversed"


def test_difference_inside_the_seed_noise_is_inconclusive():
    a = {0: 30.0, 1: 33.0, 2: 28.0}
    b = {0: 31.0, 1: 30.0, 2: 30.5}
    for paired in (True, False):
        v = judge(a, b, chance=90.0, paired=paired)
        assert v.verdict == "inconclusive" and v.low < 0 < v.high


def test_pairing_removes_the_shared_seed_effect():
    # seed effects of +-5 points shared by both rows; a constant 1-point gap between them
    seed_effect = {0: -5.0, 1: 0.0, 2: 5.0}
    a = {s: 30.0 + e for s, e in seed_effect.items()}
    b = {s: 31.0 + e + 0.01 * s for s, e in seed_effect.items()}
    assert judge(a, b, paired=True).verdict == "held"
    assert judge(a, b, paired=False).verdict == "inconclusive"


def test_welch_interval_matches_scipy():
    a, b = [30.0, 31.0, 29.0, 30.5], [33.0, 35.0, 34.0]
    v = judge(a, b, paired=False)
    res = stats.ttest_ind(a, b, equal_var=False)
    ci = res.confidence_interval(0.95)
    assert v.low == pytest.approx(ci.low) and v.high == pytest.approx(ci.high)


def test_both_sides_at_chance_are_untestable():
    v = judge({0: 88.0, 1: 89.0}, {0: 91.0, 1: 92.0}, chance=90.0, paired=True)
    assert v.verdict == "untestable" and "chance (90.0)" in v.basis
    # one side well above chance: testable
    assert judge({0: 40.0, 1: 41.0}, {0: 91.0, 1: 92.0}, chance=90.0).verdict == "held"
    # higher-is-better statistics have no chance level unless given one
    assert judge([1.2, 1.3, 1.25], [1.0, 1.01, 1.02], lower_is_better=False).verdict == "held"


def test_single_runs_need_a_noise_floor():
    assert FLOOR.floor == pytest.approx(1.959964 * math.sqrt(2))
    no_floor = judge([30.0], [40.0], chance=90.0)
    assert no_floor.verdict == "inconclusive" and "no noise floor" in no_floor.basis
    assert judge([30.0], [40.0], chance=90.0, floor=FLOOR).verdict == "held"
    assert judge([40.0], [30.0], chance=90.0, floor=FLOOR).verdict == "reversed"
    inside = judge([30.0], [31.0], chance=90.0, floor=FLOOR)
    assert inside.verdict == "inconclusive" and "noise floor ±2.77" in inside.text()


def test_missing_side_is_not_run():
    assert judge({}, {0: 1.0}).verdict == "not run"


def test_bootstrap_paired_samples():
    rng = np.random.default_rng(0)
    base = rng.normal(1.0, 0.3, 200)
    better = base + 0.2 + rng.normal(0, 0.05, 200)
    v = judge_samples(better, base, lower_is_better=False)
    assert v.verdict == "held" and v.low > 0.15 and "200 images" in v.basis
    assert judge_samples(base, better, lower_is_better=False).verdict == "reversed"
    same = judge_samples(base + rng.normal(0, 0.05, 200), base, lower_is_better=False)
    assert same.verdict == "inconclusive"
    mean, low, high = bootstrap_interval(base)
    assert low < mean < high and mean == pytest.approx(base.mean())
    with pytest.raises(ValueError, match="equal lengths"):
        judge_samples([1.0, 2.0], [1.0])


def test_chance_levels():
    assert chance_error("top1_err", 10) == pytest.approx(90.0)
    assert chance_error("top5_err", 10) == pytest.approx(50.0)
    assert chance_error("fgsm_err", 100) == pytest.approx(99.0)
    assert chance_error("loss", 10) is None


def test_noise_floors_round_trip(tmp_path):
    path = tmp_path / "floors.json"
    assert load_noise_floors(path) == {}
    save_noise_floors([FLOOR], path)
    assert load_noise_floors(path)[("small", "top1_err")] == FLOOR
    path.write_text("{broken")
    with pytest.raises(ValueError, match="floors.json"):
        load_noise_floors(path)
