"""Kaplan-Meier medians, growth exponents and ranking (attnlab/analysis/survival.py) against float64
NumPy hand computations and the product-limit definition."""
import numpy as np
import pytest
from scipy import stats

from attnlab.analysis import survival


def test_km_median_without_censoring_is_the_sample_median():
  for times in ([3.0, 5.0, 7.0, 9.0], [4.0, 1.0, 8.0], [2.0, 2.0, 6.0, 6.0, 7.0]):
    assert survival.km_median(times, [False] * len(times))["median"] == np.median(times)


def test_km_median_with_censoring_at_the_cap_counts_censored_runs_above_it():
  """Censored at the cap (after every solve): the product-limit curve is the empirical one, so the
  median is np.median with each censored run at +inf (not the median of the solved runs)."""
  solved, cap = [3.0, 5.0, 7.0, 9.0], 10.0
  result = survival.km_median(solved + [cap, cap], [False] * 4 + [True, True])
  assert result["median"] == np.median(solved + [np.inf, np.inf]) == 8.0
  assert result["median"] != np.median(solved)  # the censored runs were not dropped


def test_km_curve_matches_a_hand_product_limit_with_censoring_in_between():
  # times 2, 3+, 4, 4, 6+, 7: S(2) = 5/6, S(4) = 5/6 * (1 - 2/4), S(7) = S(4) * (1 - 1/1)
  times = [2.0, 3.0, 4.0, 4.0, 6.0, 7.0]
  censored = [False, True, False, False, True, False]
  event_times, s = survival.km_curve(times, censored)
  hand = np.array([5 / 6, 5 / 6 * (1 - 2 / 4), 5 / 6 * (1 - 2 / 4) * 0.0])
  np.testing.assert_array_equal(event_times, [2.0, 4.0, 7.0])
  np.testing.assert_allclose(s, hand, rtol=1e-15)
  assert survival.km_median(times, censored)["median"] == 4.0  # S falls from 5/6 to 5/12 at 4
  sf = stats.ecdf(stats.CensoredData(uncensored=[2.0, 4.0, 4.0, 7.0], right=[3.0, 6.0])).sf
  np.testing.assert_allclose(sf.evaluate(event_times), hand, rtol=1e-12)


def test_all_censored_or_half_censored_is_beyond_the_cap():
  assert survival.km_median([48.0, 48.0], [True, True]) == {"median": None, "ci": [None, None]}
  half = survival.km_median([3.0, 5.0, 10.0, 10.0], [False, False, True, True])
  assert half["median"] is None and half["ci"][1] is None  # np.median([3, 5, inf, inf]) = inf


def test_km_interval_covers_the_true_median_of_an_exponential():
  rng = np.random.default_rng(0)
  covered = 0
  for _ in range(200):
    lo, hi = survival.km_median(rng.exponential(1.0, 10), [False] * 10)["ci"]
    covered += (lo is None or lo <= np.log(2)) and (hi is None or np.log(2) <= hi)
  assert covered >= 0.85 * 200


def test_exponent_of_exact_power_law_is_recovered():
  points = [(t, [3.0 * t ** 1.7] * 10, 1e12) for t in (25, 50, 100, 200, 500)]
  out = survival.growth_exponent(points, resamples=200)
  assert out["exponent"] == pytest.approx(1.7, rel=1e-12) and not out["lower_bound"]
  assert out["ci95"] == [pytest.approx(1.7, rel=1e-12)] * 2 and out["points"] == 5


def _noisy(sigma, seed=1):
  rng = np.random.default_rng(seed)
  return [(t, list(3.0 * t ** 1.5 * rng.lognormal(0.0, sigma, 10)), 1e12)
          for t in (10, 20, 50, 100)]


def test_bootstrap_interval_widens_with_noise_and_is_deterministic():
  width = lambda out: out["ci95"][1] - out["ci95"][0]
  quiet = survival.growth_exponent(_noisy(0.1), 300)
  loud = survival.growth_exponent(_noisy(0.6), 300)
  assert 0 < width(quiet) < width(loud)
  assert quiet["ci95"][0] <= quiet["exponent"] <= quiet["ci95"][1]
  assert survival.growth_exponent(_noisy(0.6), 300) == loud


def test_exponent_keeps_censored_points_as_a_lower_bound():
  """At T=100 six of ten runs are censored at the cap 5000: the KM median is unbounded, so the cap
  stands in for it and the slope log(5000/100)/log(10) is a lower bound. Dropping the censored runs
  would give the median 1000 and the slope 1."""
  points = [(10, [100.0] * 10, 5000), (100, [1000.0] * 4 + [None] * 6, 5000)]
  out = survival.growth_exponent(points, resamples=300)
  assert out["exponent"] == pytest.approx(np.log(50) / np.log(10), rel=1e-12)
  assert out["lower_bound"] and out["censored_points"] == 1
  assert out["ci95"][1] is None  # most resamples have an unbounded median at T=100
  # the lowest resampled slope: >= 6 of 10 draws solved at T=100 (median 1000), P = 0.17 > 2.5%
  assert out["ci95"][0] == pytest.approx(1.0, rel=1e-12)


def test_exponent_is_undetermined_when_the_censored_point_is_not_the_longest():
  points = [(10, [None] * 5, 100), (100, [500.0] * 5, 5000), (1000, [9000.0] * 5, 50000)]
  out = survival.growth_exponent(points, resamples=50)
  assert out["exponent"] is None and out["censored_points"] == 1
  assert survival.growth_exponent(points[:1])["exponent"] is None  # one point: no slope


def test_rank_orders_only_separable_intervals():
  ranking = survival.rank({"gru": (0.5, 0.4, 0.6), "lstm": (1.0, 0.9, 1.2),
                           "transformer": (0.55, 0.45, 0.95), "rnn": (2.0, 1.5, None)})
  assert ranking["order"] == ["gru", "transformer", "lstm", "rnn"]
  assert ranking["below"]["gru"] == ["lstm", "rnn"] and ranking["below"]["transformer"] == ["rnn"]
  assert set(ranking["not_separable"]) == {("gru", "transformer"), ("transformer", "lstm")}
  text = survival.ranking_text(ranking)
  assert "gru < lstm, rnn" in text and "not separable: gru ~ transformer" in text
  none = survival.rank({"a": (1.0, 0.5, 1.5), "b": (1.2, 1.0, None)})
  assert none["not_separable"] == [("a", "b")] and survival.ranking_text(none).startswith("no two")


def test_stable_seed_differs_per_length_and_is_reproducible():
  seeds = {survival.stable_seed("lstm", "adding", t, i) for t in (25, 50) for i in range(10)}
  assert len(seeds) == 20 and all(0 <= s < 2 ** 31 for s in seeds)
  again = survival.stable_seed("lstm", "adding", 25, 0)
  assert again == survival.stable_seed("lstm", "adding", 25, 0)


def test_recorded_exponents_recompute_a_recording_from_its_seeds():
  def point(model, length, seeds):
    return {"task": "adding", "model": model, "length": length, "status": "trained",
            "cap_sequences": 1000, "seeds": [{"solved_sequences": s} for s in seeds]}
  results = {"learning_cost": {"points": [
      point("a", 10, [100, 110, 120]), point("a", 100, [1000 - 1, 990, 980]),
      point("b", 10, [None, None, None])]}}
  out = survival.recorded_exponents(results)
  assert set(out) == {"adding"} and set(out["adding"]) == {"a", "b"}
  assert out["adding"]["a"]["growth_exponent"] == pytest.approx(
      np.log(990 / 110) / np.log(10), rel=1e-9)  # two points: the slope through their medians
  assert out["adding"]["b"]["growth_exponent"] is None
