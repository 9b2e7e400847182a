"""The benchmark harness runs, and the layers it times compute the same functions as their peers.

Performance targets live in BENCHMARKS.md (`python -m benchmarks.run`), not here. PyTorch peers are
checked only where torch is installed (the [bench] extra); CI installs only [test].
"""
import json

import numpy as np
import pytest

from benchmarks import peers, report, run

SHAPES = {
    "lstm": lambda: peers.lstm_layers(3, 9, 5, 7),
    "gru": lambda: peers.gru_layers(3, 9, 5, 7),
    "transformer": lambda: peers.transformer_layers(2, 11, 16, 2, 32),
}


@pytest.mark.slow  # the benchmarks' own layers; ~25 s of compiling
@pytest.mark.parametrize("section", list(SHAPES))
def test_timed_layers_compute_the_same_outputs_on_shared_weights(section):
  layers = SHAPES[section]()
  names = list(layers)
  assert any(n.startswith("flax") for n in names)
  if peers.torch_available():
    assert any(n.startswith("torch") for n in names)
  x = peers.random_input((3, 9, 5) if section != "transformer" else (2, 11, 16), seed=3)
  want = layers[names[0]].forward(x)
  for name in names[1:]:
    np.testing.assert_allclose(layers[name].forward(x), want, rtol=2e-5, atol=2e-5, err_msg=name)


@pytest.mark.slow
def test_quick_run_writes_results_and_checks_every_target(tmp_path):
  path = tmp_path / "results.json"
  markdown = tmp_path / "results.md"
  results = run.main(["--quick", "--json", str(path), "--markdown", str(markdown)])
  saved = json.loads(path.read_text())
  for section in run.SECTIONS[1:]:
    assert section in saved, section
  assert saved["peak"]["gflops"] > 0
  assert all(row["step_s"] > 0 for row in saved["lstm"]["rows"].values())
  assert all(p["status"] == "ok" for p in saved["long"]["points"]), saved["long"]["points"]
  assert all("compile_s" in r for r in saved["compile"]["rows"]), saved["compile"]["rows"]
  statuses = {t["target"]: t["status"] for t in report.targets(results)}
  not_run = {name for name, status in statuses.items() if status == "not run"}
  if peers.torch_available():
    assert not not_run, statuses
  else:  # CI installs .[test] without torch: only the torch comparisons may be missing
    assert not_run and all("torch" in name for name in not_run), statuses
  text = markdown.read_text()
  assert "| target |" in text and "Command:" in text


def test_device_check_dry_run_lists_every_step_and_writes_nothing(tmp_path, capsys):
  from benchmarks import device_check
  out = tmp_path / "out"
  assert device_check.main(["--dry-run", f"--out={out}"]) is None
  printed = capsys.readouterr().out
  for step in device_check.steps("WORK"):
    assert f"  {step.name} " in printed and step.what in printed
  assert "configs/compare.py:long_slice" in printed and "JAX_DEFAULT_MATMUL_PRECISION" in printed
  assert not out.exists()
  with pytest.raises(SystemExit, match="unknown steps"):
    device_check.main(["--dry-run", "--steps=devices,nosuch"])


def test_device_check_reads_partial_comparison_points(tmp_path):
  from benchmarks import device_check
  point = tmp_path / "model=lstm,task.seq_len=200,seed=3"
  point.mkdir()
  rows = [{"step": 10, "steps_per_sec": 3.0}, {"step": 20, "eval_score": 0.5, "steps_per_sec": 5.0},
          {"step": 20, "solved_step": 20, "solved_sequences": 1280}]
  (point / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"torn')
  (got,) = device_check._points(str(tmp_path))
  assert got == {"point": point.name, "step": 20, "eval_score": 0.5, "solved_step": 20,
                 "solved_sequences": 1280, "steps_per_sec_median": 5.0}


def test_device_check_kills_a_silent_step_at_its_limit():
  import time
  from benchmarks import device_check
  step = device_check.Step("sleep", "prints once, then nothing", lambda out: [
      "bash", "-c", "echo started; sleep 30"], timeout=1)
  start = time.time()
  row = device_check.run_step(step, "unused", 1, lambda *a, **k: None)
  assert row["status"] == "timed out after 1 s" and time.time() - start < 10
  assert "started" in row["output_tail"]


@pytest.mark.skipif(not peers.torch_available(), reason="PyTorch peers need the [bench] extra")
@pytest.mark.parametrize("word", ["rnn", "lstm"])
def test_research_torch_models_share_weights_and_compute_the_same_outputs(word):
  import jax
  from attnlab.train import steps
  from benchmarks import research
  _, spec, model, tx, _, batch = research.setup(word, 6, 3)  # the timed step's model and batch
  params = jax.tree.map(np.asarray, steps.create_state(model, tx, spec, jax.random.PRNGKey(0),
                                                       batch).params)
  x = np.asarray(batch["inputs"], np.float32)
  want = np.asarray(model.apply({"params": params}, x)).reshape(3, -1)
  module = research.torch_model(word, params)
  with peers.torch.no_grad():
    got = module(peers.torch.from_numpy(x)).numpy()
  np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_min_rnn_target_reads_the_faster_method_at_t1000():
  row = dict(T=1000, hidden=128, lstm_over_min_gru_sequential=3.4, lstm_over_min_gru_parallel=1.1,
             lstm_over_min_lstm_sequential=2.0, lstm_over_min_lstm_parallel=2.5)
  rows = {t["target"]: t for t in report.targets({"recurrences": {"rows": [dict(row, T=100), row]}})}
  assert rows["min_gru layer vs LSTM T=1000 H=128"]["status"] == "met"
  assert rows["min_gru layer vs LSTM T=1000 H=128"]["measured"] == "3.40x (sequential)"
  assert rows["min_lstm layer vs LSTM T=1000 H=128"]["status"] == "not met"
  assert not any("T=100 " in name for name in rows)
  rows = {t["target"]: t for t in report.targets({"recurrences": {"rows": [
      dict(row, lstm_over_min_lstm_blocked=3.1)]}})}
  assert rows["min_lstm layer vs LSTM T=1000 H=128"]["measured"] == "3.10x (blocked)"
  assert rows["min_lstm layer vs LSTM T=1000 H=128"]["status"] == "met"


@pytest.mark.slow  # trains ~30 tiny runs; ~1 min of compiling and run setup on 2 cores
def test_quick_loop_section_reports_loop_and_bare_step_per_model_and_the_population(tmp_path):
  import math
  path = tmp_path / "loop.json"
  run.main(["--quick", "--sections=loop", "--json", str(path)])
  saved = json.loads(path.read_text())["loop"]
  sizes = run.QUICK["loop"]
  assert [(r["model"], r["T"]) for r in saved["rows"]] == [
      (w, t) for t in sizes["lengths"] for w in sizes["words"]]
  for row in saved["rows"]:
    for key in ("loop_ms", "bare_ms", "ratio"):
      assert math.isfinite(row[key]) and row[key] > 0, (key, row)
    assert row["ratio"] == pytest.approx(row["loop_ms"] / row["bare_ms"])
    # the loop's own program (the stream on the device), timed as the bare step is
    assert math.isfinite(row["program_ms"]) and row["program_ms"] > 0, row
    assert row["program_ratio"] == pytest.approx(row["program_ms"] / row["bare_ms"])
    if saved["cache"]:  # the warm-up run filled the persistent cache: no timed run compiled
      assert row["warmup_fresh_compiles"] > 0 and row["fresh_compiles"] == [0, 0], row
  pop = saved["population"]
  lrs, seeds = pop["learning_rates"], pop["seeds"]
  assert pop["members"] == len(lrs) * len(seeds)
  for name in ("singles", "population", "seed_groups"):
    assert pop[name]["seconds"] > 0
    assert sum(pop[name]["members_per_program"]) == pop["members"], (name, pop[name])
    assert pop[name]["programs"] == len(pop[name]["members_per_program"])
  assert pop["singles"]["members_per_program"] == [1] * pop["members"]
  assert pop["seed_groups"]["members_per_program"] == [len(seeds)] * len(lrs)
  assert pop["population_over_singles"] == pytest.approx(
      pop["population"]["seconds"] / pop["singles"]["seconds"])


@pytest.mark.slow  # trains ~10 tiny runs; ~1-4 min of compiling on 2 shared cores
def test_loop_device_runs_every_part_at_tiny_size_and_stops_the_grid_at_its_budget(tmp_path):
  from benchmarks import loop_device
  out = tmp_path / "loop.json"
  doc = loop_device.main(["--tiny", f"--out={out}", "--budget=1"])  # the grid: 1 s, then stopped
  assert json.loads(out.read_text())["seeds"] == doc["seeds"]
  assert doc["seeds"]["loop_steps_per_s"] > 0 and doc["seeds"]["long_s"] > 0
  assert doc["population"]["members"] == 4 and doc["population"]["ratio"] > 0
  grid = doc["hochreiter"]
  assert grid["error"] is None and grid["stopped_by_budget"]  # saved and stopped, not killed
  assert len(grid["runs"]) == 2 and grid["solved"] == 0
