"""Verdicts with uncertainty: does a paper's directional claim hold in our runs?

Every claim is reduced to per-unit effects ``d_1 .. d_n`` (one per independent unit: a
paired run, a seed) whose mean is the claimed quantity, and one rule decides
(:func:`decide`): the ``level`` confidence interval of the mean effect

* lies entirely on the claimed side of zero: ``"holds"``;
* lies entirely on the other side: ``"does not hold"``;
* contains zero (or there is no interval, ``n < 2``): ``"inconclusive at this scale"``.

Three kinds of claim build the effects:

* :func:`paired_verdict` -- "A beats B" / "A less than B": ``d_i = a_i - b_i`` over samples
  paired by (distillation seed, evaluation network) (:func:`ddlib.results.records.paired_samples`
  pairs records);
* :func:`trend_verdict` -- "y rises (falls) with x": ``d_s`` = least-squares slope of y on x
  in seed ``s`` (one slope per seed: the seeds are the independent units, consecutive points
  of one curve are not);
* :func:`threshold_verdict` -- "ratio less than 1.5", "more than 2x": ``d_i = v_i - t``, or
  ``log v_i - log t`` with ``scale="log"`` (ratios are compared on the log scale, where
  x2 and /2 are symmetric).

The interval is, by default, the Student t-interval ``mean +- t_{(1+level)/2, n-1} sd / sqrt(n)``
(``method="t"``: exact for normal effects and honest at the 3-10 seeds a chapter can
afford); ``method="bootstrap"`` gives the seeded percentile bootstrap of the mean
(``resamples`` draws of n effects with replacement), whose interval is too narrow at small
n, so it is a robustness check rather than the default. :func:`required_n` says how many
units an interval excluding zero would need at the measured effect and spread.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping, Sequence

import numpy as np

__all__ = ["DEFAULT_LEVEL", "Verdict", "VERDICTS", "decide", "paired_verdict", "trend_verdict", "threshold_verdict", "required_n"]

#: The book's confidence level: a two-sided 90 % interval, i.e. a one-sided test at 5 % of the
#: claimed direction (and, separately, of the opposite one).
DEFAULT_LEVEL = 0.90

#: The three outcomes of a directional claim judged by its interval.
VERDICTS = ("holds", "does not hold", "inconclusive at this scale")
_DIRECTIONS = ("greater", "less")
_METHODS = ("t", "bootstrap")
_KINDS = ("paired", "trend", "threshold")
_SCALES = ("linear", "log")
# Bootstrap resamples drawn per block, so memory stays bounded for long samples.
_BLOCK = 1000


def _num(x: float) -> str:
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "∞" if x > 0 else "-∞"
    return f"{x:.0f}" if abs(x) >= 1000 else f"{x:.3g}"


def _signed(x: float) -> str:
    text = _num(x)
    return text if text.startswith("-") or text == "nan" else "+" + text


def decide(low: float, high: float, direction: str, n: int) -> str:
    """The verdict of an interval ``[low, high]`` for a claim that the effect is ``direction`` zero.

    ``"holds"`` when the interval excludes zero on the claimed side (``direction="greater"``:
    ``low > 0``; ``"less"``: ``high < 0``), ``"does not hold"`` when it excludes zero on the
    other side, else (zero inside, an infinite bound or ``n < 2``) ``"inconclusive at this scale"``.
    """
    if direction not in _DIRECTIONS:
        raise ValueError(f"direction={direction!r}: expected one of {_DIRECTIONS}")
    if n < 2 or not (math.isfinite(low) and math.isfinite(high)):
        return VERDICTS[2]
    if low > 0:
        return VERDICTS[0] if direction == "greater" else VERDICTS[1]
    if high < 0:
        return VERDICTS[0] if direction == "less" else VERDICTS[1]
    return VERDICTS[2]


def _t_quantile(level: float, dof: np.ndarray | int) -> np.ndarray | float:
    from scipy.stats import t

    return t.ppf(0.5 + level / 2, dof)


def required_n(effect: float, sd: float, level: float = DEFAULT_LEVEL, *, max_n: int = 100_000) -> int | None:
    """Smallest ``n >= 2`` whose t-interval would exclude zero for this mean effect and spread.

    Solves ``t_{(1+level)/2, n-1} * sd / sqrt(n) < |effect|`` (the effect and the per-unit
    standard deviation ``sd`` taken as the true values: a planning estimate, not a promise).

    Returns
    -------
    int or None
        ``None`` when no ``n <= max_n`` suffices (also for a zero or NaN effect or NaN ``sd``).
    """
    _check_level(level)
    if not (math.isfinite(effect) and math.isfinite(sd)) or effect == 0:
        return None
    if sd < 0:
        raise ValueError(f"sd={sd}: expected a standard deviation >= 0")
    n = np.arange(2, max_n + 1)
    ok = np.nonzero(_t_quantile(level, n - 1) * sd / np.sqrt(n) < abs(effect))[0]
    return int(n[ok[0]]) if len(ok) else None


def _check_level(level: float) -> None:
    if not 0 < level < 1:
        raise ValueError(f"level={level!r}: expected a confidence level in (0, 1), e.g. 0.95")


@dataclasses.dataclass(frozen=True)
class Verdict:
    """The verdict on one directional claim, with the effect and its confidence interval.

    Attributes
    ----------
    claim : str
        The claim in words ("AST beats MTT").
    verdict : str
        One of :data:`VERDICTS`; must agree with ``low``, ``high``, ``direction`` and ``n``.
    effect, low, high : float
        Mean per-unit effect and its interval, on the decision scale (a difference, a slope,
        a log ratio). ``low = -inf``, ``high = inf`` when ``n < 2``.
    n : int
        Number of independent units (paired runs, seeds, runs).
    level : float
        Confidence level (0.95).
    method : str
        ``"t"`` (t-interval) or ``"bootstrap"`` (seeded percentile bootstrap).
    kind : str
        ``"paired"``, ``"trend"`` or ``"threshold"``.
    direction : str
        ``"greater"``: the claim is effect > 0; ``"less"``: effect < 0.
    estimand : str
        What ``effect`` measures, in words ("AST - MTT", "slope of accuracy on IPC").
    unit : str
        Unit of ``effect`` ("points", "points per IPC"; "" for none).
    n_unit : str
        What the units are ("paired runs", "seeds", "runs").
    sd : float
        Standard deviation of the per-unit effects (NaN when ``n < 2``), for :meth:`required_n`.
    scale : str
        ``"log"`` for a threshold compared on the log scale (``effect`` is then
        ``mean(log v) - log(reference)``), else ``"linear"``.
    reference : float
        The threshold of a threshold claim (0 otherwise).
    note : str
        Anything the reader must know (why there is no interval, ...).
    """

    claim: str
    verdict: str
    effect: float
    low: float
    high: float
    n: int
    level: float = DEFAULT_LEVEL
    method: str = "t"
    kind: str = "paired"
    direction: str = "greater"
    estimand: str = "effect"
    unit: str = ""
    n_unit: str = "runs"
    sd: float = math.nan
    scale: str = "linear"
    reference: float = 0.0
    note: str = ""

    def __post_init__(self) -> None:
        for name, allowed in (("method", _METHODS), ("kind", _KINDS), ("direction", _DIRECTIONS),
                              ("scale", _SCALES), ("verdict", VERDICTS)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name}={getattr(self, name)!r}: expected one of {allowed}")
        if isinstance(self.n, bool) or not isinstance(self.n, int) or self.n < 0:
            raise ValueError(f"n={self.n!r}: expected an int >= 0")
        _check_level(self.level)
        for name in ("effect", "low", "high", "sd", "reference"):
            object.__setattr__(self, name, float(getattr(self, name)))
        if self.low > self.high:
            raise ValueError(f"low={self.low} > high={self.high}: expected an interval low <= high")
        expected = decide(self.low, self.high, self.direction, self.n)
        if self.verdict != expected:
            raise ValueError(f"verdict={self.verdict!r} contradicts the interval [{self.low}, {self.high}] "
                             f"(n={self.n}, direction={self.direction!r}), which gives {expected!r}")

    @property
    def holds(self) -> bool:
        """``True`` only for ``"holds"``."""
        return self.verdict == VERDICTS[0]

    def required_n(self) -> int | None:
        """Units an interval excluding zero would need at this effect and spread (:func:`required_n`)."""
        return required_n(self.effect, self.sd, self.level)

    def sentence(self) -> str:
        """The verdict in one sentence for the chapter.

        e.g. ``"AST - MTT = +2.1 points, 95 % CI [0.4, 3.8], n = 6 paired runs: holds"``.
        """
        level = f"{100 * self.level:g} %"
        units = f"n = {self.n} {self.n_unit}"
        unit = f" {self.unit}" if self.unit else ""
        if self.n < 2:
            # a log-scale effect is shown back on the ratio scale, as in the interval's sentence below
            shown = (f"{_num(self.reference * math.exp(self.effect))}{unit}" if self.scale == "log"
                     else f"{_signed(self.effect)}{unit}")
            return f"{self.estimand} = {shown}, no interval from {units} (at least 2 are needed): {self.verdict}"
        if self.scale == "log":
            ref = self.reference
            return (f"{self.estimand} = {_num(ref * math.exp(self.effect))}{unit} (geometric mean), {level} CI "
                    f"[{_num(ref * math.exp(self.low))}, {_num(ref * math.exp(self.high))}] against "
                    f"{_num(ref)}, {units}: {self.verdict}")
        return (f"{self.estimand} = {_signed(self.effect)}{unit}, {level} CI [{_num(self.low)}, {_num(self.high)}], "
                f"{units}: {self.verdict}")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-safe dict (non-finite floats become ``None``; :meth:`from_dict` restores them)."""
        out = dataclasses.asdict(self)
        for name in ("effect", "low", "high", "sd", "reference"):
            if not math.isfinite(out[name]):
                out[name] = None
        return out

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "Verdict":
        """Inverse of :meth:`to_dict` (``None``: NaN effect/sd, ``-inf`` low, ``inf`` high)."""
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - fields)
        if unknown:
            raise ValueError(f"unknown Verdict fields {unknown}; expected some of {sorted(fields)}")
        missing = {"effect": math.nan, "sd": math.nan, "low": -math.inf, "high": math.inf, "reference": 0.0}
        return cls(**{k: (missing[k] if v is None and k in missing else v) for k, v in values.items()})


def _finite(values: Any, name: str) -> np.ndarray:
    """1-D float64 array of ``values``; a ValueError names the first non-finite entry."""
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1:
        raise ValueError(f"{name} has shape {array.shape}: expected a 1-D sequence of numbers")
    bad = np.nonzero(~np.isfinite(array))[0]
    if len(bad):
        raise ValueError(f"{name}[{bad[0]}] is {array[bad[0]]}: every sample must be a finite number "
                         "(report a diverged run as such instead of averaging it)")
    return array


def _interval(effects: np.ndarray, level: float, method: str, resamples: int, seed: int) -> tuple[float, float, float]:
    """``(sd, low, high)`` of the mean of ``effects`` (``n >= 2``)."""
    n = len(effects)
    mean, sd = float(effects.mean()), float(effects.std(ddof=1))
    if method == "t":
        half = float(_t_quantile(level, n - 1)) * sd / math.sqrt(n)
        return sd, mean - half, mean + half
    rng = np.random.default_rng(seed)
    means = np.concatenate([effects[rng.integers(0, n, size=(min(_BLOCK, resamples - start), n))].mean(axis=1)
                            for start in range(0, resamples, _BLOCK)])
    low, high = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return sd, float(low), float(high)


def _verdict(claim: str, effects: np.ndarray, *, kind: str, direction: str, level: float, method: str,
             resamples: int, seed: int, estimand: str, unit: str, n_unit: str, scale: str = "linear",
             reference: float = 0.0) -> Verdict:
    _check_level(level)
    if method not in _METHODS:
        raise ValueError(f"method={method!r}: expected one of {_METHODS} ('t' is the default)")
    if direction not in _DIRECTIONS:
        raise ValueError(f"direction={direction!r}: expected one of {_DIRECTIONS}")
    if method == "bootstrap" and (isinstance(resamples, bool) or not isinstance(resamples, int) or resamples < 100):
        raise ValueError(f"resamples={resamples!r}: expected an int >= 100 (10,000 is the default)")
    n = len(effects)
    if n == 0:
        raise ValueError(f"claim {claim!r} has no samples: record the claim as not run instead")
    if n < 2:
        note = (f"n = {n}: one sample gives no interval, so the claim cannot be judged; "
                "run at least 2 seeds (3 or more for a useful interval)")
        return Verdict(claim, VERDICTS[2], float(effects.mean()), -math.inf, math.inf, n, level, method, kind,
                       direction, estimand, unit, n_unit, math.nan, scale, reference, note)
    sd, low, high = _interval(effects, level, method, resamples, seed)
    return Verdict(claim, decide(low, high, direction, n), float(effects.mean()), low, high, n, level, method, kind,
                   direction, estimand, unit, n_unit, sd, scale, reference)


def paired_verdict(claim: str, a: Sequence[float], b: Sequence[float], *, direction: str = "greater",
                   names: tuple[str, str] = ("A", "B"), unit: str = "", level: float = DEFAULT_LEVEL, method: str = "t",
                   resamples: int = 10_000, seed: int = 0) -> Verdict:
    """Verdict on "A beats B" (``direction="greater"``) or "A less than B" (``"less"``).

    Parameters
    ----------
    a, b : sequence of float, shape (n,)
        Paired samples: ``a[i]`` and ``b[i]`` share the distillation seed and the evaluation
        network (see :func:`ddlib.results.records.paired_samples`). The effect is ``mean(a - b)``.
    names : (str, str)
        Names of A and B for the sentence ("AST - MTT").
    method : {"t", "bootstrap"}
        Interval of the mean difference: t-interval (default) or seeded percentile bootstrap.
    resamples, seed : int
        Bootstrap draws and the seed of their generator (ignored by ``"t"``).

    Raises
    ------
    ValueError
        ``a`` and ``b`` differ in length, a sample is NaN/inf (naming it), no samples, or a
        bad ``direction``/``method``/``level``.
    """
    a_, b_ = _finite(a, "a"), _finite(b, "b")
    if len(a_) != len(b_):
        raise ValueError(f"paired samples differ in length: len(a)={len(a_)}, len(b)={len(b_)}; "
                         "pair them by (distill seed, evaluation network), e.g. with paired_samples")
    return _verdict(claim, a_ - b_, kind="paired", direction=direction, level=level, method=method,
                    resamples=resamples, seed=seed, estimand=f"{names[0]} - {names[1]}", unit=unit,
                    n_unit="paired runs" if len(a_) != 1 else "paired run")


def _slope(x: np.ndarray, y: np.ndarray, s: int) -> float:
    if len(x) != len(y):
        raise ValueError(f"seed {s}: x has {len(x)} points, y has {len(y)}; expected equal lengths")
    spread = x - x.mean()
    if not (spread ** 2).sum() > 0:
        raise ValueError(f"seed {s}: x={x.tolist()} needs at least 2 distinct values for a slope")
    return float((spread * (y - y.mean())).sum() / (spread ** 2).sum())


def trend_verdict(claim: str, x: Sequence[float] | Sequence[Sequence[float]], y: Sequence[Sequence[float]], *,
                  direction: str = "greater", names: tuple[str, str] = ("y", "x"), unit: str = "",
                  level: float = DEFAULT_LEVEL, method: str = "t", resamples: int = 10_000, seed: int = 0) -> Verdict:
    """Verdict on "y rises with x" (``direction="greater"``) or "y falls with x" (``"less"``).

    The effect of seed ``s`` is the least-squares slope of ``y[s]`` on ``x`` (or ``x[s]``); the
    interval is over seeds (the independent units), not over the points of one curve.

    Parameters
    ----------
    x : sequence of float, shape (p,), or one sequence per seed
        The abscissae (e.g. IPCs), shared by every seed or given per seed.
    y : sequence of sequences, shape (seeds, p)
        One curve per seed.
    names : (str, str)
        Names of y and x for the sentence ("slope of accuracy on IPC").
    unit : str
        Unit of the slope ("points per IPC").
    """
    curves = [_finite(row, f"y[{s}]") for s, row in enumerate(y)]
    shared = all(np.ndim(v) == 0 for v in x)
    xs = [_finite(x, "x")] * len(curves) if shared else [_finite(row, f"x[{s}]") for s, row in enumerate(x)]
    if len(xs) != len(curves):
        raise ValueError(f"x gives {len(xs)} curves of abscissae, y {len(curves)}; expected one x or one per y")
    slopes = np.array([_slope(xi, yi, s) for s, (xi, yi) in enumerate(zip(xs, curves))])
    return _verdict(claim, slopes, kind="trend", direction=direction, level=level, method=method, resamples=resamples,
                    seed=seed, estimand=f"slope of {names[0]} on {names[1]}", unit=unit,
                    n_unit="seeds" if len(slopes) != 1 else "seed")


def threshold_verdict(claim: str, values: Sequence[float], threshold: float, *, direction: str = "less",
                      scale: str = "linear", name: str = "value", unit: str = "", level: float = DEFAULT_LEVEL,
                      method: str = "t", resamples: int = 10_000, seed: int = 0) -> Verdict:
    """Verdict on "value less than ``threshold``" (``direction="less"``) or "more than" (``"greater"``).

    Parameters
    ----------
    values : sequence of float, shape (n,)
        One value per independent run (e.g. the AST/MTT time ratio of each seed).
    threshold : float
        The claimed bound (1.5 for "less than 1.5x", 2 for "more than 2x").
    scale : {"linear", "log"}
        ``"linear"``: effects ``v - threshold``. ``"log"``: ``log v - log threshold`` (for
        ratios; values and threshold must be positive); the sentence reports the geometric
        mean and its interval back on the ratio scale.
    """
    v = _finite(values, "values")
    if not math.isfinite(threshold):
        raise ValueError(f"threshold={threshold}: expected a finite number")
    if scale not in _SCALES:
        raise ValueError(f"scale={scale!r}: expected one of {_SCALES}")
    if scale == "log":
        if threshold <= 0 or (v <= 0).any():
            raise ValueError(f"scale='log' needs positive values and threshold; got threshold={threshold}, "
                             f"min(values)={v.min() if len(v) else None}")
        effects, estimand = np.log(v) - math.log(threshold), name
    else:
        effects, estimand = v - threshold, f"{name} - {_num(threshold)}"
    return _verdict(claim, effects, kind="threshold", direction=direction, level=level, method=method,
                    resamples=resamples, seed=seed, estimand=estimand, unit=unit,
                    n_unit="runs" if len(v) != 1 else "run", scale=scale, reference=float(threshold))
