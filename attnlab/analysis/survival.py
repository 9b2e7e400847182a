"""Censored learning costs: Kaplan-Meier medians, growth exponents with bootstrap intervals, ranks.

A run that never met the task's criterion within the cap is right-censored at the cap: it counts
as "more than the cap", never dropped. Pure NumPy + SciPy (float64).

  km_median(times, censored)  product-limit median, 95% interval from scipy.stats.ecdf's bands
  growth_exponent(points)     slope of log(KM median) on log T, bootstrap 95% interval (censored kept)
  rank(intervals)             orders models only where their intervals separate
  python -m attnlab.analysis.survival RESULTS.json   the exponents and ranking of a recording
  point_statistics, model_exponent, rank_exponents: the same on the learning-cost results' points
  (attnlab/comparison/learning_cost.py writes them; the report reads them, or recomputes them for
  results recorded before they existed)

Conventions. The median is the smallest t with S(t) <= 0.5; where S is exactly 0.5 over an interval
it is the interval's midpoint (so without censoring it is np.median). It is None (unbounded,
"> cap")
when S never reaches 0.5 (or stays at exactly 0.5 to the last observation, a censored one: half the
runs failed). Interval limits: the first t where the lower / upper band of S falls to <= 0.5; None
where a band never does within the observations (the limit lies beyond the cap).
"""
import sys
import warnings
import zlib

import numpy as np
from scipy import stats

HALF = 0.5
_EPS = 1e-12  # S is a product of float64 ratios: "exactly 0.5" within this
# Seeds per point below which (or seeds reused across T) the learning-cost table is only a preview.
MIN_SEEDS_TO_RANK = 10


def stable_seed(*parts) -> int:
  """A seed in [0, 2**31) from the parts' text (zlib.crc32): the same on every machine and run."""
  return zlib.crc32("/".join(str(p) for p in parts).encode()) % 2 ** 31


def _as_arrays(times, censored):
  times = np.asarray(times, dtype=np.float64)
  censored = np.asarray(censored, dtype=bool)
  if times.shape != censored.shape or times.ndim != 1:
    raise ValueError(f"times {times.shape} and censored {censored.shape}: "
                     "two 1-D arrays of one length")
  return times, censored


def km_curve(times, censored) -> tuple:
  """Product-limit survival curve. times, censored: [n] (censored[i]: run i never solved, times[i]
  its cap). -> (event_times [k] ascending distinct, S [k] = P(time > t) just after each).
  At a tie a censored run is at risk at the events' time (the usual convention)."""
  times, censored = _as_arrays(times, censored)
  event_times, events = np.unique(times[~censored], return_counts=True)
  at_risk = times.size - np.searchsorted(np.sort(times), event_times, side="left")
  return event_times, np.cumprod(1.0 - events / at_risk.astype(np.float64))


def median_of_curve(event_times, survival):
  """The median of a KM curve (module conventions); None when unbounded."""
  below = np.flatnonzero(survival <= HALF + _EPS)
  if below.size == 0:
    return None
  k = below[0]
  if abs(survival[k] - HALF) > _EPS:
    return float(event_times[k])
  if k + 1 < len(event_times):  # flat at exactly 0.5 until the next event: the midpoint
    return float((event_times[k] + event_times[k + 1]) / 2)
  return None  # 0.5 to the end of the observations: half the runs censored


def _band_crossing(quantiles, band):
  """First quantile where a confidence band of S is <= 0.5 (NaN, where the formula is undefined at
  S = 0, counts as 0); None when it never is."""
  values = np.nan_to_num(np.asarray(band, dtype=np.float64), nan=0.0)
  below = np.flatnonzero(values <= HALF + _EPS)
  return float(quantiles[below[0]]) if below.size else None


def km_median(times, censored, confidence: float = 0.95) -> dict:
  """{"median": float | None, "ci": [lo, hi]} of sequences to solve; None = unbounded (beyond the
  last observation, "> cap"). The interval inverts scipy.stats.ecdf's pointwise log-log band of S
  (Brookmeyer & Crowley's construction): lo where the lower band falls to 0.5, hi where the upper
  does."""
  times, censored = _as_arrays(times, censored)
  if times.size == 0:
    raise ValueError("km_median: no runs (times is empty)")
  median = median_of_curve(*km_curve(times, censored))
  if censored.all():
    return {"median": None, "ci": [None, None]}
  data = stats.CensoredData(uncensored=times[~censored], right=times[censored])
  sf = stats.ecdf(data).sf
  with warnings.catch_warnings():  # undefined at S = 0 (handled in _band_crossing)
    warnings.simplefilter("ignore", RuntimeWarning)
    band = sf.confidence_interval(confidence, method="log-log")
  return {"median": median, "ci": [_band_crossing(sf.quantiles, band.low.probabilities),
                                   _band_crossing(sf.quantiles, band.high.probabilities)]}


def sequences_and_censoring(values: list, cap: float) -> tuple:
  """values: each seed's sequences to solve, None = censored at `cap`. -> (times, censored)."""
  return ([float(cap) if v is None else float(v) for v in values], [v is None for v in values])


def _slope(log_t, log_m) -> float:
  x = log_t - log_t.mean()
  return float(np.dot(x, log_m - log_m.mean()) / np.dot(x, x))


def growth_exponent(points: list, resamples: int = 2000, seed: int = 0) -> dict:
  """Least-squares slope of log(KM median) on log T, with a percentile-bootstrap 95% interval.

  points: [(T, values, cap)] of the trained lengths only (values: sequences per seed, None =
  censored), distinct T; lengths never trained (skipped after a failure) are absent, not zero.
  Censoring is kept: a median that is unbounded at some T (in the data or a resample) enters as the
  cap, a lower bound on it. Raising the median at a T above the mean log T only raises the slope,
  so when every such T lies above the mean (the skip rule makes it the longest) the slope is a
  lower bound ("lower_bound"); otherwise it is undetermined (None). Bootstrap: the seeds of each T
  resampled independently with replacement (numpy Generator seeded with `seed`, so deterministic).
  lo: the 2.5% quantile (next order statistic down) of the resampled slopes (those with a cap
  stand-in are lower bounds, so lo is conservative); hi: the 97.5% quantile (next one up) with every
  such slope taken as +inf (None, unbounded, when more than 2.5% of resamples hit an unbounded
  median).
  -> {"exponent", "lower_bound", "ci95": [lo, hi] | None, "points", "censored_points"}."""
  points = sorted(points, key=lambda p: p[0])
  log_t = np.log([float(p[0]) for p in points])
  samples = [sequences_and_censoring(values, cap) for _, values, cap in points]
  caps = [float(cap) for _, _, cap in points]

  def medians(draws):
    """(log medians [len(points)], which were unbounded and replaced by the cap)."""
    m = [median_of_curve(*km_curve(t, c)) for t, c in draws]
    unbounded = np.array([v is None for v in m])
    return np.log([cap if v is None else v for v, cap in zip(m, caps)]), unbounded

  log_m, unbounded = medians(samples)
  out = {"exponent": None, "lower_bound": bool(unbounded.any()), "ci95": None,
         "points": len(points), "censored_points": int(unbounded.sum())}
  if len(points) < 2 or (unbounded.any() and not (log_t > log_t.mean())[unbounded].all()):
    return out  # one point, or a cap stand-in below the mean log T: bounded in neither direction
  out["exponent"] = _slope(log_t, log_m)
  rng = np.random.default_rng(seed)
  slopes, bounded = np.empty(resamples), np.empty(resamples, dtype=bool)
  arrays = [(np.asarray(t), np.asarray(c)) for t, c in samples]
  for b in range(resamples):
    draws = []
    for t, c in arrays:
      idx = rng.integers(0, len(t), len(t))
      draws.append((t[idx], c[idx]))
    log_mb, unbounded_b = medians(draws)
    slopes[b], bounded[b] = _slope(log_t, log_mb), not unbounded_b.any()
  # order statistics on the safe side of each quantile (no interpolation towards +inf)
  hi = float(np.quantile(np.where(bounded, slopes, np.inf), 0.975, method="higher"))
  out["ci95"] = [float(np.quantile(slopes, 0.025, method="lower")), hi if np.isfinite(hi) else None]
  return out


def rank(intervals: dict) -> dict:
  """intervals: {name: (estimate, lo, hi)}, lower = better; lo/hi None = unbounded below/above.
  a is ranked below b only when a's interval lies entirely below b's (hi_a < lo_b).
  -> {"order": names by estimate (None last), "below": {a: [b, ...] ranked above a},
      "not_separable": [(a, b), ...] pairs in order whose intervals overlap}."""
  key = lambda n: (intervals[n][0] is None, intervals[n][0] if intervals[n][0] is not None else 0.0)
  order = sorted(intervals, key=key)
  lo = {n: -np.inf if intervals[n][1] is None else intervals[n][1] for n in order}
  hi = {n: np.inf if intervals[n][2] is None else intervals[n][2] for n in order}
  below, tied = {n: [] for n in order}, []
  for i, a in enumerate(order):
    for b in order[i + 1:]:
      if hi[a] < lo[b]:
        below[a].append(b)
      elif hi[b] < lo[a]:
        below[b].append(a)
      else:
        tied.append((a, b))
  return {"order": order, "below": below, "not_separable": tied}


def ranking_text(ranking: dict) -> str:
  """'gru < lstm, rnn; transformer < rnn; not separable: gru ~ transformer, lstm ~ rnn'."""
  parts = [f"{a} < {', '.join(bs)}" for a, bs in ranking["below"].items() if bs]
  text = "; ".join(parts) if parts else "no two separable"
  if ranking["not_separable"]:
    text += "; not separable: " + ", ".join(f"{a} ~ {b}" for a, b in ranking["not_separable"])
  return text


def point_statistics(values: list, cap: float) -> dict:
  """values: a point's sequences to solve per seed (None = censored at `cap`) -> its median fields:
  median_sequences / median (KM; None when unbounded), median_ci95, median_censored (unbounded)."""
  km = km_median(*sequences_and_censoring(values, cap))
  return {"median_sequences": km["median"], "median_ci95": km["ci"], "median": km["median"],
          "median_censored": km["median"] is None}


def model_exponent(points: list, resamples: int = 2000) -> dict:
  """One model's growth exponent on one task from its learning-cost points (the trained ones; the
  skipped are absent): {"growth_exponent", "growth_exponent_ci95", "lower_bound", "points",
  "censored_points"}."""
  trained = [(p["length"], [s["solved_sequences"] for s in p["seeds"]], p["cap_sequences"])
             for p in points if p["status"] == "trained"]
  fit = growth_exponent(trained, resamples, seed=0)
  return {"growth_exponent": fit["exponent"], "growth_exponent_ci95": fit["ci95"],
          "lower_bound": fit["lower_bound"], "points": fit["points"],
          "censored_points": fit["censored_points"]}


def rank_exponents(exponents: dict) -> dict:
  """rank() of {model: model_exponent entry}; models with no exponent (censored at their shortest T,
  or one point) are not ranked: listed under "unranked"."""
  ranked = {m: (e["growth_exponent"], *(e["growth_exponent_ci95"] or (None, None)))
            for m, e in exponents.items() if e["growth_exponent"] is not None}
  out = rank(ranked)
  out["unranked"] = [m for m in exponents if m not in ranked]
  return out


def recorded_exponents(results: dict) -> dict:
  """{task: {model: model_exponent}} of a learning-cost results.json, recomputed from its seeds
  (recordings made before these statistics carry only medians)."""
  by = {}
  for p in results["learning_cost"]["points"]:
    by.setdefault(p["task"], {}).setdefault(p["model"], []).append(p)
  return {task: {model: model_exponent(points) for model, points in models.items()}
          for task, models in by.items()}


def main(argv) -> int:
  """python -m attnlab.analysis.survival RESULTS.json: each model's growth exponent with its
  bootstrap 95% interval, and the ranking, per task of a learning-cost recording."""
  import json
  if len(argv) != 2:
    print("usage: python -m attnlab.analysis.survival path/to/results.json", file=sys.stderr)
    return 2
  with open(argv[1]) as f:
    results = json.load(f)
  for task, exponents in recorded_exponents(results).items():
    print(f"{task}:")
    for model, e in exponents.items():
      lo, hi = e["growth_exponent_ci95"] or (None, None)
      value = "none (censored at its shortest T)" if e["growth_exponent"] is None else (
          f"{'>= ' if e['lower_bound'] else ''}{e['growth_exponent']:.2f}, 95% interval "
          f"[{'-' if lo is None else f'{lo:.2f}'}, {'unbounded' if hi is None else f'{hi:.2f}'}]")
      print(f"  {model}: {value}")
    print(f"  ranking: {ranking_text(rank_exponents(exponents))}")
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv))
