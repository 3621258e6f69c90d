"""Tests of ddlib.results.verdicts: effects, intervals and the three verdicts of each kind of claim.

Reference numbers are computed by hand in the comments; the t quantiles come from a printed
t table (two-sided 95 %: df 2 -> 4.302653, df 3 -> 3.182446, df 5 -> 2.570582, df 6 -> 2.446912).
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from ddlib.results.records import paired_samples
from ddlib.results.verdicts import VERDICTS, Verdict, decide, paired_verdict, required_n, threshold_verdict, trend_verdict

HOLDS, NOT, INCONCLUSIVE = VERDICTS


def test_paired_t_interval_by_hand():
    # d = a - b = [1, 2, 3, 4]: mean 2.5, sd = sqrt((2.25 + 0.25 + 0.25 + 2.25) / 3) = sqrt(5/3) = 1.2909944,
    # se = sd / 2 = 0.6454972, half width = 3.182446 * 0.6454972 = 2.0542537.
    v = paired_verdict("AST beats MTT", [3, 4, 5, 6], [2, 2, 2, 2], names=("AST", "MTT"), unit="points", level=0.95)
    assert v.effect == pytest.approx(2.5)
    assert v.sd == pytest.approx(1.2909944, abs=1e-6)
    assert (v.low, v.high) == (pytest.approx(0.4457463, abs=1e-5), pytest.approx(4.5542537, abs=1e-5))
    assert (v.verdict, v.n, v.level, v.method, v.kind) == (HOLDS, 4, 0.95, "t", "paired")
    assert v.sentence() == "AST - MTT = +2.5 points, 95 % CI [0.446, 4.55], n = 4 paired runs: holds"


@pytest.mark.parametrize("a, b, direction, expected", [
    ([3, 4, 5, 6], [2, 2, 2, 2], "greater", HOLDS),         # d = [1, 2, 3, 4]
    ([2, 2, 2, 2], [3, 4, 5, 6], "greater", NOT),           # d = [-1, -2, -3, -4]: CI [-4.55, -0.446]
    ([1, 0, 2, 0], [0, 1, 0, 2], "greater", INCONCLUSIVE),  # d = [1, -1, 2, -2]: mean 0
    ([2, 2, 2, 2], [3, 4, 5, 6], "less", HOLDS),            # "A less than B"
    ([3, 4, 5, 6], [2, 2, 2, 2], "less", NOT),
])
def test_paired_three_outcomes(a, b, direction, expected):
    v = paired_verdict("claim", a, b, direction=direction)
    assert v.verdict == expected
    assert v.holds == (expected == HOLDS)


def test_trend_slope_per_seed_by_hand():
    # slopes of y on x = [1, 2, 3]: 1, 2, 1.5 -> mean 1.5, sd 0.5, se 0.5 / sqrt(3) = 0.2886751,
    # half width = 4.302653 * 0.2886751 = 1.2420692 -> CI [0.2579308, 2.7420692].
    y = [[0, 1, 2], [5, 7, 9], [1, 2.5, 4]]
    v = trend_verdict("accuracy rises with IPC", [1, 2, 3], y, names=("accuracy", "IPC"), unit="points per IPC",
                      level=0.95)
    assert v.effect == pytest.approx(1.5)
    assert (v.low, v.high) == (pytest.approx(0.2579308, abs=1e-5), pytest.approx(2.7420692, abs=1e-5))
    assert (v.verdict, v.n, v.n_unit, v.kind) == (HOLDS, 3, "seeds", "trend")
    assert v.sentence().startswith("slope of accuracy on IPC = +1.5 points per IPC, 95 % CI [0.258, 2.74], n = 3")
    assert trend_verdict("falls", [1, 2, 3], [[-v for v in row] for row in y]).verdict == NOT
    assert trend_verdict("falls", [1, 2, 3], [[-v for v in row] for row in y], direction="less").verdict == HOLDS
    flat = [[0, 1, 2], [2, 1, 0], [0, 0.5, 1]]  # slopes 1, -1, 0.5
    assert trend_verdict("rises", [1, 2, 3], flat).verdict == INCONCLUSIVE


def test_trend_accepts_x_per_seed_and_rejects_constant_x():
    v = trend_verdict("rises", [[1, 2], [10, 20, 30]], [[0, 1], [0, 10, 20]])  # slopes 1 and 1
    assert v.effect == pytest.approx(1.0) and v.sd == 0.0
    with pytest.raises(ValueError, match="seed 0: x=.*2 distinct values"):
        trend_verdict("rises", [3, 3], [[1, 2], [3, 4]])
    with pytest.raises(ValueError, match="seed 1: x has 3 points, y has 2"):
        trend_verdict("rises", [1, 2, 3], [[1, 2, 3], [1, 2]])


def test_threshold_three_outcomes_by_hand():
    # values - 1.5 = [-0.4, -0.3, -0.2]: mean -0.3, sd 0.1, half width 4.302653 * 0.1 / sqrt(3) = 0.2484138.
    v = threshold_verdict("AST costs less than 1.5 x MTT", [1.1, 1.2, 1.3], 1.5, name="time ratio", level=0.95)
    assert (v.effect, v.low, v.high) == (pytest.approx(-0.3), pytest.approx(-0.5484138, abs=1e-5),
                                         pytest.approx(-0.0515862, abs=1e-5))
    assert v.verdict == HOLDS and v.sentence().startswith("time ratio - 1.5 = -0.3, 95 % CI [-0.548, -0.0516]")
    assert threshold_verdict("less than 1.5", [1.7, 1.8, 1.9], 1.5).verdict == NOT
    assert threshold_verdict("less than 1.5", [1.2, 1.5, 1.8], 1.5).verdict == INCONCLUSIVE


def test_threshold_on_log_scale():
    # "more than 2x": log(v / 2) = [0.5, 0.6, 0.7]: CI [0.6 - 0.2484138, 0.6 + 0.2484138] > 0.
    values = [2 * math.exp(0.5), 2 * math.exp(0.6), 2 * math.exp(0.7)]
    v = threshold_verdict("momentum multiplies Avg Var by more than 2", values, 2.0, direction="greater", level=0.95,
                          scale="log", name="Avg Var ratio")
    assert v.verdict == HOLDS and v.effect == pytest.approx(0.6)
    assert v.low == pytest.approx(0.3515862, abs=1e-5)
    # geometric mean 2 e^0.6 = 3.644238, CI 2 e^0.3515862 = 2.842, 2 e^0.8484138 = 4.671
    assert v.sentence() == ("Avg Var ratio = 3.64 (geometric mean), 95 % CI [2.84, 4.67] against 2, n = 3 runs: holds")
    near = [2 * math.exp(0.1), 2 * math.exp(0.2), 2 * math.exp(0.3)]  # CI [-0.048, 0.448]
    assert threshold_verdict("more than 2x", near, 2.0, direction="greater", scale="log",
                             level=0.95).verdict == INCONCLUSIVE
    with pytest.raises(ValueError, match="positive values"):
        threshold_verdict("ratio", [1.0, -1.0], 2.0, scale="log")


def test_one_sample_is_inconclusive_never_holds():
    v = paired_verdict("AST beats MTT", [90.0], [10.0], names=("AST", "MTT"))
    assert v.verdict == INCONCLUSIVE and v.n == 1 and v.effect == 80.0
    assert (v.low, v.high) == (-math.inf, math.inf) and math.isnan(v.sd)
    assert "n = 1" in v.note and "at least 2" in v.note
    assert v.sentence() == ("AST - MTT = +80, no interval from n = 1 paired run (at least 2 are needed): "
                            "inconclusive at this scale")
    assert v.required_n() is None
    assert threshold_verdict("t", [0.1], 1.5).verdict == INCONCLUSIVE
    assert trend_verdict("r", [1, 2], [[1, 5]]).verdict == INCONCLUSIVE


def test_bootstrap_is_seeded_and_matches_a_hand_enumeration():
    a, b = [3, 4, 5, 6, 9], [2, 2, 2, 2, 1]
    first = paired_verdict("c", a, b, method="bootstrap", seed=3)
    again = paired_verdict("c", a, b, method="bootstrap", seed=3)
    other = paired_verdict("c", a, b, method="bootstrap", seed=4)
    assert (first.low, first.high) == (again.low, again.high)
    assert (first.low, first.high) != (other.low, other.high)
    assert first.method == "bootstrap" and 1 <= first.low < first.high <= 8  # means of resamples of d in [1, 8]
    # d = [0, 1]: resample means are 0, 0.5, 1 with probabilities 1/4, 1/2, 1/4, so the 2.5 % and
    # 97.5 % quantiles are exactly 0 and 1: the interval touches zero -> inconclusive.
    v = paired_verdict("c", [0, 1], [0, 0], method="bootstrap", seed=0)
    assert (v.low, v.high, v.verdict) == (0.0, 1.0, INCONCLUSIVE)


def test_bad_inputs_raise_naming_the_value():
    with pytest.raises(ValueError, match=r"a\[1\] is nan"):
        paired_verdict("c", [1.0, float("nan")], [0.0, 0.0])
    with pytest.raises(ValueError, match=r"values\[0\] is inf"):
        threshold_verdict("c", [float("inf"), 1.0], 1.5)
    with pytest.raises(ValueError, match=r"y\[1\]\[2\] is nan"):
        trend_verdict("c", [1, 2, 3], [[1, 2, 3], [1, 2, float("nan")]])
    with pytest.raises(ValueError, match=r"len\(a\)=3, len\(b\)=2"):
        paired_verdict("c", [1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="no samples"):
        paired_verdict("c", [], [])
    with pytest.raises(ValueError, match="method='z'"):
        paired_verdict("c", [1, 2], [0, 0], method="z")
    with pytest.raises(ValueError, match="direction='up'"):
        paired_verdict("c", [1, 2], [0, 0], direction="up")
    with pytest.raises(ValueError, match="level=1.5"):
        paired_verdict("c", [1, 2], [0, 0], level=1.5)


def test_trend_nan_names_seed_and_point():
    with pytest.raises(ValueError, match=r"y\[0\]\[1\]"):
        trend_verdict("c", [1, 2], [[1, float("nan")]])


def test_required_n_by_hand():
    # effect 1, sd 1: n = 6 gives 2.570582 / sqrt(6) = 1.049 > 1, n = 7 gives 2.446912 / sqrt(7) = 0.925 < 1.
    assert required_n(1.0, 1.0, 0.95) == 7
    assert required_n(-1.0, 1.0, 0.95) == 7          # the sign does not matter
    assert required_n(1.0, 0.0) == 2
    assert required_n(0.0, 1.0) is None
    assert required_n(1e-9, 1.0, max_n=100) is None
    v = paired_verdict("c", [1, 0, 2, 0], [0, 1, 0, 1.5])  # inconclusive: d = [1, -1, 2, -1.5]
    assert v.required_n() == required_n(v.effect, v.sd) and v.required_n() > v.n


def test_decide_and_verdict_validation():
    assert decide(0.1, 2.0, "greater", 3) == HOLDS
    assert decide(0.0, 2.0, "greater", 3) == INCONCLUSIVE  # zero on the boundary is not excluded
    assert decide(-2.0, -0.1, "greater", 3) == NOT
    assert decide(0.1, 2.0, "greater", 1) == INCONCLUSIVE
    with pytest.raises(ValueError, match="verdict='holds' contradicts"):
        Verdict("c", HOLDS, 1.0, -1.0, 2.0, 5)
    with pytest.raises(ValueError, match="verdict='maybe'"):
        Verdict("c", "maybe", 1.0, 0.5, 2.0, 5)
    with pytest.raises(ValueError, match="low=2.0 > high=1.0"):
        Verdict("c", HOLDS, 1.0, 2.0, 1.0, 5)


def test_to_dict_is_json_safe_and_round_trips():
    import json

    one = paired_verdict("c", [1.0], [0.0])
    data = one.to_dict()
    assert data["low"] is None and data["high"] is None and data["sd"] is None
    json.dumps(data, allow_nan=False)
    back = Verdict.from_dict(data)
    assert (back.low, back.high, back.verdict, back.n) == (-math.inf, math.inf, INCONCLUSIVE, 1)
    full = paired_verdict("c", [3, 4, 5, 6], [2, 2, 2, 2])
    assert Verdict.from_dict(full.to_dict()) == full
    with pytest.raises(ValueError, match=r"unknown Verdict fields \['colour'\]"):
        Verdict.from_dict({**full.to_dict(), "colour": 1})


def test_paired_samples_aligns_by_seed_and_network():
    frame = pd.DataFrame({"method": ["A", "A", "B", "B", "A", "B"], "distill_seed": [0, 1, 1, 0, 0, 0],
                          "eval_index": [0, 0, 0, 0, 1, 1], "value": [10.0, 11.0, 1.0, 0.0, 12.0, 2.0]})
    every = dict(keys=("distill_seed", "eval_index"), average=None)
    a, b = paired_samples(frame, "A", "B", **every)
    assert sorted(zip(a.tolist(), b.tolist())) == [(10.0, 0.0), (11.0, 1.0), (12.0, 2.0)]
    with pytest.raises(ValueError, match="only one of 'A', 'B'"):
        paired_samples(frame.iloc[:5], "A", "B", **every)
    with pytest.raises(ValueError, match="several records"):
        paired_samples(pd.concat([frame, frame.iloc[:1]]), "A", "B", **every)
    assert np.all(a - b == 10.0)
    # The default pairs distillation seeds: seed 0 averages its two networks (11 vs 1), seed 1 has one each.
    a, b = paired_samples(frame, "A", "B")
    assert (a.tolist(), b.tolist()) == ([11.0, 11.0], [1.0, 1.0])
    with pytest.raises(ValueError, match="same evaluation networks"):
        paired_samples(frame.iloc[:5], "A", "B", keys=("distill_seed",))  # seed 0: two networks of A, one of B
    with pytest.raises(ValueError, match="several records"):
        paired_samples(pd.concat([frame, frame.iloc[:1]]), "A", "B")
    with pytest.raises(ValueError, match="records come from 2 runs"):
        paired_samples(frame.assign(run_id=["r1", "r1", "r1", "r2", "r2", "r2"]), "A", "B")


def test_log_threshold_of_one_run_reports_the_ratio_not_its_log():
    v = threshold_verdict("AST costs less than 1.5x", [3.0], 1.5, direction="less", scale="log", name="ratio",
                          unit="x")
    assert v.effect == pytest.approx(math.log(2.0))  # the decision scale stays the log ratio
    assert v.sentence() == ("ratio = 3 x, no interval from n = 1 run (at least 2 are needed): "
                            "inconclusive at this scale")
