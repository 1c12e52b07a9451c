"""Uncertainty of our numbers and the verdict a claim gets from them.

A row trained with several seeds is summarised by its mean and a 95 % Student-t interval over
seeds (:func:`estimate`).  A claim "``better`` beats ``worse`` on a metric" is judged on the
difference ``better - worse`` (:func:`judge`), oriented so that a negative difference is the
claimed direction when lower is better (errors) and a positive one when higher is better
(Figure 2's statistics):

* **untestable**: both sides sit within ``chance_margin`` points of the metric's chance level
  (e.g. 90 % top-1 error for 10 classes): neither model learned enough for an ordering to mean
  anything;
* **held** / **reversed**: the 95 % interval of the difference lies wholly on the claimed / the
  opposite side of 0.  With two or more seeds on each side the interval comes from the runs
  themselves: *paired* over the seeds both sides share when the caller says the runs share data,
  data order and random draws per seed (a t-interval of the per-seed differences), else Welch's
  unpaired interval.  A side with a single run has no interval of its own: the difference must
  then exceed the profile's *noise floor* (:class:`NoiseFloor`, the seed spread of one row
  measured once with five or more seeds, stored with its provenance in
  ``experiments/noise_floors.json``);
* **inconclusive**: otherwise (the interval contains 0, the difference is inside the floor, or
  there is a single run and no floor was measured for the profile).

Every verdict carries the difference, its interval or floor and the basis in words, so that the
report prints them next to it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

VERDICTS = ("held", "reversed", "inconclusive", "untestable", "not run")
LEVEL = 0.95
CHANCE_MARGIN = 5.0  # points of error: "at chance" means mean error >= chance - 5


def _t(level: float, dof: float) -> float:
    from scipy.stats import t

    return float(t.ppf(0.5 + level / 2, dof))


@dataclass(frozen=True)
class Estimate:
    """Mean of ``values`` (one per seed) and the half-width of its ``level`` t-interval (None for
    a single value)."""

    mean: float
    half_width: float | None
    n: int
    sd: float | None

    def text(self, digits: int = 2) -> str:
        if self.half_width is None:
            return f"{self.mean:.{digits}f} (1 seed)"
        return f"{self.mean:.{digits}f} ± {self.half_width:.{digits}f} ({self.n} seeds)"


def estimate(values: Sequence[float], level: float = LEVEL) -> Estimate:
    """Mean and Student-t interval over seeds: mean ± t_{n-1} * sd / sqrt(n)."""
    vals = [float(v) for v in values]
    if not vals:
        raise ValueError("values must hold at least one number")
    n = len(vals)
    mean = sum(vals) / n
    if n == 1:
        return Estimate(mean, None, 1, None)
    sd = math.sqrt(sum((v - mean) ** 2 for v in vals) / (n - 1))
    return Estimate(mean, _t(level, n - 1) * sd / math.sqrt(n), n, sd)


@dataclass(frozen=True)
class NoiseFloor:
    """The seed-to-seed spread of one metric at one profile, measured once on one row.

    ``floor`` is the 95 % half-width for the difference of two single runs drawn with that
    spread: 1.96 * sqrt(2) * sd."""

    profile: str
    metric: str
    sd: float
    seeds: int
    row: str
    provenance: str

    @property
    def floor(self) -> float:
        return 1.959964 * math.sqrt(2.0) * self.sd

    def text(self) -> str:
        return (
            f"noise floor ±{self.floor:.2f} (seed sd {self.sd:.2f} of {self.row}, "
            f"{self.seeds} seeds, {self.provenance})"
        )


NOISE_FLOORS = Path(__file__).resolve().parent.parent / "experiments" / "noise_floors.json"


def load_noise_floors(path: str | Path = NOISE_FLOORS) -> dict[tuple[str, str], NoiseFloor]:
    """{(profile, metric): NoiseFloor} from the stored measurements (empty when none)."""
    path = Path(path)
    if not path.is_file():
        return {}
    try:
        entries = json.loads(path.read_text())
        floors = [NoiseFloor(**e) for e in entries]
    except (json.JSONDecodeError, TypeError) as exc:
        raise ValueError(f"{path}: not a list of noise-floor records ({exc})") from exc
    return {(f.profile, f.metric): f for f in floors}


def save_noise_floors(floors: Sequence[NoiseFloor], path: str | Path = NOISE_FLOORS) -> None:
    """Merge ``floors`` into the stored measurements (same profile and metric: replaced)."""
    path = Path(path)
    current = load_noise_floors(path)
    for f in floors:
        current[(f.profile, f.metric)] = f
    entries = [asdict(f) for _, f in sorted(current.items())]
    path.write_text(json.dumps(entries, indent=1) + "\n")


@dataclass(frozen=True)
class Verdict:
    """A claim's verdict with the difference (better - worse), its interval and its basis."""

    verdict: str
    difference: float | None = None
    low: float | None = None
    high: float | None = None
    basis: str = ""

    def text(self) -> str:
        if self.difference is None:
            return self.basis
        if self.low is None:
            return f"Δ {self.difference:+.2f}; {self.basis}"
        return f"Δ {self.difference:+.2f} [{self.low:+.2f}, {self.high:+.2f}]; {self.basis}"


def _seeds(values: Mapping[int, float] | Sequence[float]) -> dict[int, float]:
    if isinstance(values, Mapping):
        return {int(k): float(v) for k, v in values.items()}
    return {i: float(v) for i, v in enumerate(values)}


def judge(
    better: Mapping[int, float] | Sequence[float],
    worse: Mapping[int, float] | Sequence[float],
    *,
    lower_is_better: bool = True,
    chance: float | None = None,
    chance_margin: float = CHANCE_MARGIN,
    paired: bool = False,
    floor: NoiseFloor | None = None,
    level: float = LEVEL,
) -> Verdict:
    """The verdict on "``better`` beats ``worse``" from their values per seed (see the module
    docstring).  ``chance``: the metric's chance level (None: no such level, e.g. Figure 2's
    statistics); ``paired``: the runs of one seed share data, data order and draws."""
    b, w = _seeds(better), _seeds(worse)
    if not b or not w:
        return Verdict("not run", basis="not run")
    eb, ew = estimate(list(b.values()), level), estimate(list(w.values()), level)
    diff = eb.mean - ew.mean
    sign = -1.0 if lower_is_better else 1.0  # claimed direction of the difference
    if chance is not None:
        at = (
            (lambda m: m >= chance - chance_margin)
            if lower_is_better
            else (lambda m: m <= chance + chance_margin)
        )
        if at(eb.mean) and at(ew.mean):
            return Verdict(
                "untestable",
                diff,
                basis=f"both within {chance_margin:g} points of chance ({chance:.1f})",
            )
    common = sorted(set(b) & set(w))
    if paired and len(common) >= 2:
        d = estimate([b[s] - w[s] for s in common], level)
        low, high = d.mean - d.half_width, d.mean + d.half_width
        basis = f"paired over seeds {','.join(map(str, common))}, {level:.0%} t-interval"
        diff = d.mean
    elif eb.n >= 2 and ew.n >= 2:
        vb, vw = eb.sd**2 / eb.n, ew.sd**2 / ew.n
        se = math.sqrt(vb + vw)
        if se == 0:
            dof = float(eb.n + ew.n - 2)
        else:
            dof = (vb + vw) ** 2 / (vb**2 / (eb.n - 1) + vw**2 / (ew.n - 1))
        half = _t(level, dof) * se
        low, high = diff - half, diff + half
        basis = f"unpaired ({eb.n} vs {ew.n} seeds), {level:.0%} Welch interval"
    elif floor is not None:
        low, high = diff - floor.floor, diff + floor.floor
        basis = floor.text()
    else:
        return Verdict(
            "inconclusive",
            diff,
            basis="a single run and no noise floor measured for this profile and metric",
        )
    return Verdict(_side(low, high, sign), diff, low, high, basis)


def _side(low: float, high: float, sign: float) -> str:
    """held / reversed when [low, high] lies wholly on the claimed (sign) / the other side of 0."""
    if sign * low > 0 and sign * high > 0:
        return "held"
    if sign * low < 0 and sign * high < 0:
        return "reversed"
    return "inconclusive"


def bootstrap_interval(
    values: Sequence[float], boots: int = 2000, seed: int = 0, level: float = LEVEL
) -> tuple[float, float, float]:
    """(mean, low, high): the mean of per-item ``values`` and its percentile bootstrap interval
    (items resampled with replacement, ``boots`` resamples, seeded)."""
    import numpy as np

    v = np.asarray(values, dtype=float)
    if v.size == 0:
        raise ValueError("values must hold at least one number")
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, v.size, size=(boots, v.size))].mean(1)
    low, high = np.quantile(means, [0.5 - level / 2, 0.5 + level / 2])
    return float(v.mean()), float(low), float(high)


def judge_samples(
    better: Sequence[float],
    worse: Sequence[float],
    *,
    lower_is_better: bool = True,
    boots: int = 2000,
    seed: int = 0,
    level: float = LEVEL,
) -> Verdict:
    """The verdict from per-item values measured on the *same* items (Figure 2: one value per
    test image and method): a percentile bootstrap interval of the mean paired difference,
    resampling items with replacement (``boots`` resamples, seeded)."""
    import numpy as np

    b, w = np.asarray(better, dtype=float), np.asarray(worse, dtype=float)
    if b.size == 0 or w.size == 0:
        return Verdict("not run", basis="not run")
    if b.shape != w.shape:
        raise ValueError(f"paired samples need equal lengths, got {b.size} and {w.size}")
    d = b - w
    mean, low, high = bootstrap_interval(d, boots, seed, level)
    sign = -1.0 if lower_is_better else 1.0
    basis = f"paired bootstrap over {d.size} images ({boots} resamples), {level:.0%} interval"
    return Verdict(_side(low, high, sign), mean, low, high, basis)


def chance_error(metric: str, num_classes: int) -> float | None:
    """Chance level (%) of an error metric for ``num_classes`` classes: 100 (1 - k/K) with k = 5
    for top-5 and 1 otherwise (an attack cannot make a guesser worse than that either)."""
    if not metric.endswith("_err"):
        return None
    k = min(5, num_classes) if metric == "top5_err" else 1
    return 100.0 * (1.0 - k / num_classes)
