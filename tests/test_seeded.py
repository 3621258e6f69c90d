"""Seeded comparisons: per-network records and the paired verdict at the seed level."""
import numpy as np
import pytest

from ddlib.evaluation.protocols import EvalResult
from ddlib.results.recorder import Recorder
from ddlib.results.records import read_records
from ddlib.results.seeded import compare_methods, mean_text, method_values, record_evaluation


def result(last, best, statistic="last"):
    n = len(last)
    return EvalResult(last=tuple(last), best=tuple(best), best_epoch=(1,) * n, seeds=tuple(range(n)), arch="ConvNet",
                      lr=0.01, epochs=2, statistic=statistic)


def test_record_evaluation_writes_last_and_best_per_network(tmp_path):
    rec = Recorder(tmp_path, "AST", "mini", "mnist5k", "cpu")
    mean = record_evaluation(rec, "Table 3", "AST", result([0.5, 0.7], [0.6, 0.9], "best"), distill_seed=4, ipc=1)
    assert mean == pytest.approx(75.0)  # the protocol's statistic: best, (60 + 90) / 2
    rows = read_records(rec.path)
    assert sorted(zip(rows["metric"], rows["eval_index"], rows["value"])) == [
        ("test_acc", 0, 50.0), ("test_acc", 1, 70.0), ("test_acc_best", 0, 60.0), ("test_acc_best", 1, 90.0)]
    assert set(rows["distill_seed"]) == {4} and set(rows["ipc"]) == {1}
    with pytest.raises(ValueError, match="one last and one best"):
        record_evaluation(rec, "Table 3", "AST", {"last": [0.5], "best": [0.5, 0.6]}, distill_seed=0)


def test_compare_methods_pairs_seeds_after_averaging_networks(tmp_path):
    rec = Recorder(tmp_path, "AST", "mini", "mnist5k", "cpu")
    # Per seed, A's networks average 0.70, 0.72, 0.74 and B's 0.60, 0.61, 0.66: d = 10, 11, 8 points.
    for seed, (a, b) in enumerate((((0.69, 0.71), (0.60, 0.60)), ((0.72, 0.72), (0.60, 0.62)),
                                    ((0.73, 0.75), (0.65, 0.67)))):
        record_evaluation(rec, "Table 3", "A", result(a, a), distill_seed=seed, ipc=1)
        record_evaluation(rec, "Table 3", "B", result(b, b), distill_seed=seed, ipc=1)
    verdict = compare_methods(rec, "Table 3", "A beats B", "A", "B", ipc=1)
    # d = [10, 11, 8]: mean 29/3, sd sqrt(((1/3)^2 + (4/3)^2 + (5/3)^2) / 2) = sqrt(7/3) = 1.5275;
    # 90 % t (2 dof) = 2.919986: half-width 2.919986 * 1.5275 / sqrt(3) = 2.5752.
    assert verdict.n == 3 and verdict.effect == pytest.approx(29 / 3)
    assert verdict.low == pytest.approx(29 / 3 - 2.5752, abs=1e-3) and verdict.verdict == "holds"
    assert compare_methods(rec, "Table 3", "B beats A", "B", "A", ipc=1).verdict == "does not hold"
    assert method_values(rec, "Table 3", "A").tolist() == pytest.approx([70.0, 72.0, 74.0])
    assert mean_text(np.array([70.0, 72.0, 74.0])) == "72.0 % ± 2.0 (3 seeds)"
    with pytest.raises(ValueError, match="no records"):
        method_values(rec, "Table 3", "C")
