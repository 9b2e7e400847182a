"""The tuning part: its pick rule, its grid-widening loop (on a fake trainer), its config, the LRU's
cap-independent schedule, TUNED feeding the configs, and (slow) a tiny end to end."""
import json
import math
import os

import numpy as np
import pytest

from attnlab import comparison
from attnlab.analysis import tuning_report
from attnlab.comparison import tuning
from attnlab.train import optim
from attnlab.configs import adding, common, compare


def outcomes(schedule, lr, by_length, losses=None):
  """Synthetic outcomes: by_length {T: [sequences per seed, None = censored]}."""
  out = []
  for length, values in by_length.items():
    for seed, v in enumerate(values):
      loss = (losses or {}).get(length, [0.1] * len(values))[seed]
      out.append({"model": "m", "length": length, "schedule": schedule, "lr": lr, "seed": seed,
                  "solved_sequences": v, "censored": v is None, "final_loss": loss})
  return out


def test_fewer_censored_lengths_beat_faster_solving():
  # a solves T=25 fastest but its T=100 median is censored (2 of 3 seeds); b solves both lengths
  a = outcomes("constant", 1e-3, {25: [1000, 2000, None], 100: [3000, None, None]})
  b = outcomes("rsqrt", 3e-3, {25: [5000, 6000, 7000], 100: [8000, 9000, None]})
  choice = tuning.pick(a + b)
  assert (choice["schedule"], choice["lr"]) == ("rsqrt", 3e-3)
  # b's key by hand: no censored length; medians 6000 and 9000 (the censored seed is the largest)
  assert choice["key"][:2] == [0, 15000.0]
  (sa,) = [s for s in tuning.summarise(a + b) if s["lr"] == 1e-3]
  assert sa["key"][:2] == (1, 2000.0) and sa["lengths"][1]["median"] is None


def test_lowest_sum_of_medians_wins_then_loss_then_lower_rate():
  slow = outcomes("constant", 1e-3, {25: [5000, 6000, 7000], 100: [8000, 9000, None]})
  fast = outcomes("constant", 1e-2, {25: [1000, 1000, 900], 100: [4000, 4000, 4000]})
  assert tuning.pick(slow + fast)["lr"] == 1e-2  # 1000 + 4000 < 6000 + 9000
  # every candidate censored everywhere: the lowest mean median final loss, NaN counting as inf
  never = {25: [None] * 3, 100: [None] * 3}
  low = outcomes("rsqrt", 1e-4, never, {25: [0.10, 0.12, 0.50], 100: [0.16, 0.15, 0.90]})
  high = outcomes("rsqrt", 1e-2, never, {25: [0.05, 0.06, 0.07], 100: [0.16, 0.17, float("nan")]})
  diverged = outcomes("constant", 1e-3, never, {25: [float("nan")] * 3, 100: [0.01] * 3})
  choice = tuning.pick(low + high + diverged)
  assert (choice["schedule"], choice["lr"]) == ("rsqrt", 1e-2)  # mean(0.06, 0.17) < mean(0.12, 0.16)
  assert choice["key"][2] == pytest.approx((0.06 + 0.17) / 2)
  # equal on everything: the lower rate
  same = {25: [100, 200, 300], 100: [400, 500, 600]}
  assert tuning.pick(outcomes("constant", 3e-3, same) + outcomes("constant", 1e-3, same))["lr"] == 1e-3


def test_widen_continues_the_grids_spacing():
  grid = [1e-4, 3e-4, 1e-3, 3e-3, 1e-2]
  assert tuning.widen(grid, "high") == pytest.approx(3e-2)
  assert tuning.widen(grid + [3e-2], "high") == pytest.approx(1e-1)
  assert tuning.widen(grid, "low") == pytest.approx(3e-5)
  assert tuning.widen([3e-5] + grid, "low") == pytest.approx(1e-5)
  assert tuning.widen([1.0, 2.0, 4.0], "high") == 8.0 and tuning.widen([1.0, 2.0, 4.0], "low") == 0.5
  with pytest.raises(ValueError, match="edge"):
    tuning.widen(grid, "middle")


def fake_trainer(best_lr: float, calls: list):
  """train(model, grid): sequences to solve grow with |log10(lr / best_lr)|; records each grid."""

  def train(model, grid):
    calls.append(list(grid))
    out = []
    for lr in grid:
      cost = int(1000 * (1 + abs(math.log10(lr / best_lr))))
      out += outcomes("constant", lr, {25: [cost] * 3, 100: [2 * cost] * 3})
      out += outcomes("rsqrt", lr, {25: [cost + 1] * 3, 100: [2 * cost] * 3})
    return [dict(o, model=model) for o in out]

  return train


def test_widening_adds_one_rate_beyond_the_edge_until_the_choice_is_inside():
  calls = []
  result = tuning.tune_model("m", [1e-4, 3e-4, 1e-3, 3e-3, 1e-2], fake_trainer(0.1, calls), 5)
  assert [len(g) for g in calls] == [5, 6, 7, 8]
  assert result["widened"] == pytest.approx([3e-2, 1e-1, 3e-1])
  assert result["choice"]["lr"] == pytest.approx(0.1) and result["choice"]["schedule"] == "constant"
  assert not result["at_edge"] and result["grid"] == sorted(calls[-1])
  # the low edge, and the cap on widenings: the choice stays at the edge and says so
  calls = []
  result = tuning.tune_model("m", [1e-4, 3e-4, 1e-3, 3e-3, 1e-2], fake_trainer(1e-6, calls), 1)
  assert result["widened"] == pytest.approx([3e-5]) and len(calls) == 2
  assert result["at_edge"] and result["choice"]["lr"] == pytest.approx(3e-5)
  calls = []  # inside from the start: nothing added
  result = tuning.tune_model("m", [1e-4, 3e-4, 1e-3, 3e-3, 1e-2], fake_trainer(1e-3, calls), 3)
  assert len(calls) == 1 and result["widened"] == [] and result["choice"]["lr"] == 1e-3


def test_run_tuning_records_every_outcome_the_choices_and_their_tuned_fields():
  c = compare.get_config("tuning").comparison
  c.tuning.models = ("a", "b")
  best = {"a": 1e-3, "b": 3e-3}
  trainers = {m: fake_trainer(best[m], []) for m in best}
  out = tuning.run_tuning(c, "unused", train=lambda model, grid: trainers[model](model, grid))
  assert len(out["outcomes"]) == 2 * 5 * 2 * 2 * 3  # models x rates x schedules x lengths x seeds
  assert {(o["model"], o["lr"]) for o in out["outcomes"]} == {(m, lr) for m in best for lr in c.tuning.lrs}
  assert out["tuned"]["b"] == {"learning_rate": 3e-3, "schedule": "constant", "warmup_steps": 0,
                               "schedule_steps": None}
  json.dumps(out)  # results.json
  text = "\n".join(tuning_report.section(out))
  assert "| **constant** | **0.001** |" in text and "| **constant** | **0.003** |" in text
  assert "TUNED = {'a': {'learning_rate': 0.001" in text
  c.tuning.lrs = (1e-3,)
  with pytest.raises(ValueError, match="comparison.tuning.lrs"):
    tuning.run_tuning(c, "unused", train=lambda model, grid: [])


def test_tuning_config_is_one_recipe_for_every_model():
  c = compare.get_config("tuning").comparison
  assert tuple(c.parts) == ("tuning",) and "tuning" in comparison.PARTS
  t = c.tuning
  assert set(t.models) == set(compare.LEARNING_COST_MODELS) and len(t.seeds) >= 3
  lengths = compare.LEARNING_COST_LENGTHS[t.task]
  assert min(t.lengths) == min(lengths) and set(t.lengths) <= set(lengths) and len(t.lengths) == 2
  ratios = np.diff(np.log10(sorted(t.lrs)))
  assert len(t.lrs) >= 5 and np.all((ratios > 0.45) & (ratios < 0.55))  # log-spaced, half decades
  assert min(t.lrs) < min(common.MODEL_LR.values()) and max(t.lrs) >= max(common.MODEL_LR.values())
  for name, s in t.schedules.items():  # none depends on the cap
    assert s.schedule in optim.SCHEDULES
    assert s.schedule != "warmup_cosine" or s.schedule_steps is not None, name
  assert {s.schedule for s in t.schedules.values()} >= {"constant"} and len(t.schedules) >= 2


def test_lru_schedule_does_not_depend_on_a_cap_up_to_its_length():
  """The same learning rate at every shared step for two caps within the fixed 1156 steps, the
  warmup-cosine formula, and a longer run stretching the cosine to its own end (never rate 0)."""
  short, capped = adding.get_config("lru,steps=500"), adding.get_config("lru,steps=1156")
  assert (short.num_train_steps, capped.num_train_steps) == (500, 1156)
  steps = np.arange(500)
  lr_short = np.array([float(optim.make_schedule(short.optimizer, 500)(s)) for s in steps])
  lr_capped = np.array([float(optim.make_schedule(capped.optimizer, 1156)(s)) for s in steps])
  np.testing.assert_array_equal(lr_short, lr_capped)
  peak, warm = short.optimizer.learning_rate, 115
  for length in (1156, 3000):  # the fixed length; a 3000-step run's own length
    s = np.arange(length, dtype=np.float64)
    ref = np.where(s < warm, peak * s / warm,
                   peak * 0.5 * (1 + np.cos(np.pi * (s - warm) / (length - warm))))
    config = adding.get_config(f"lru,steps={length}")
    got = np.array([float(optim.make_schedule(config.optimizer, length)(int(x))) for x in s])
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-9)


def test_tuned_table_sets_rate_and_schedule(monkeypatch):
  assert common.TUNED == {}  # no recording yet: today's values
  assert adding.get_config("gru").optimizer.learning_rate == common.MODEL_LR["gru"]
  monkeypatch.setattr(common, "TUNED", {"lstm": dict(learning_rate=2e-3, schedule="rsqrt",
                                                      warmup_steps=100, schedule_steps=None),
                                        "lru": dict(learning_rate=5e-3, schedule="constant",
                                                    warmup_steps=0, schedule_steps=None)})
  for word in ("lstm", "lstm_chrono"):  # a variant without its own entry: its registry model's
    opt = adding.get_config(word).optimizer
    assert (opt.learning_rate, opt.schedule, opt.warmup_steps) == (2e-3, "rsqrt", 100)
  opt = adding.get_config("lru").optimizer
  assert (opt.learning_rate, opt.schedule, opt.warmup_steps, opt.name) == (5e-3, "constant", 0, "adamw")
  assert adding.get_config("lstm,lr=0.5").optimizer.learning_rate == 0.5  # the argument still wins
  assert adding.get_config("gru").optimizer.learning_rate == common.MODEL_LR["gru"]


@pytest.mark.slow
def test_tuning_part_end_to_end(tmp_path):
  """One tiny model, 2 rates, 1 seed, 2 schedules, a few steps: runs, results.json, report, config."""
  c = compare.get_config("tuning").comparison
  tiny = dict(hidden_size=8)
  c.model_overrides = {"rnn": tiny}
  c.tuning.update(models=("rnn",), lengths=(4,), seeds=(0,), lrs=(1e-3, 1e-2), steps=4,
                  max_widenings=0)
  c.tuning.schedules = {"constant": dict(schedule="constant", warmup_steps=0, schedule_steps=None),
                        "cosine": dict(schedule="warmup_cosine", warmup_steps=1, schedule_steps=3)}
  c.tuning.run_overrides = {"batch_size": 8, "num_eval_batches": 1, "eval_every": 2,
                            "checkpoint_every": 2, "final_eval_sequences": 16,
                            "checkpoint": {"async_save": False}}
  workdir = str(tmp_path / "tuning")
  results = comparison.run(c, workdir)
  recorded = json.load(open(os.path.join(workdir, "results.json")))["tuning"]
  assert len(recorded["outcomes"]) == 4 and set(recorded["tuned"]) == {"rnn"}
  assert recorded["models"]["rnn"]["at_edge"]  # 2 rates: always at an edge; max_widenings=0 keeps it
  cosine = [o for o in results["tuning"]["outcomes"] if o["schedule"] == "cosine"][0]
  opt = json.load(open(os.path.join(cosine["workdir"], "config.json")))["optimizer"]
  assert (opt["schedule"], opt["warmup_steps"], opt["schedule_steps"]) == ("warmup_cosine", 1, 3)
  assert "optimizer.schedule_steps=3" in cosine["command"]
  text = open(os.path.join(workdir, "report.md")).read()
  assert tuning_report.SECTION in text and "TUNED = {'rnn'" in text and cosine["command"] in text
