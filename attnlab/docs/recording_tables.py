"""Renderers of the single-recording tables of docs/results: the default job, the Transformer's
schedule probe and T=500 run, the H200 slice, the learning-rate sweep, the LRU copy check,
selective copying and compare_medium's long-range table."""
import statistics

import numpy as np

from attnlab.docs import formats as fm
from attnlab.docs import learning_cost_tables as lc

_SHORT = dict(fm.LABELS, lstm="LSTM")


def _solved_cell(p: dict, wrong: bool) -> str:
  """'16,384, 21,696' or '>22,400 (both seeds[; 476 and 479 of 2,560 wrong])'."""
  if p is None or p["status"] != "trained":
    return "" if p is None else "not trained"
  seeds, cap = p["seeds"], p["cap_sequences"]
  if all(s["censored"] for s in seeds):
    text = f">{fm.seqs(cap)} (" + ("both seeds" if len(seeds) == 2 else f"all {len(seeds)}")
    if wrong:
      text += "; " + " and ".join(str(s["final_wrong"]) for s in seeds)
      text += f" of {fm.seqs(seeds[0]['final_sequences'])} wrong"
    return text + ")"
  return ", ".join(lc._seed(s, cap) for s in seeds)


def compare_small(sources, options, doc):
  """The default job: per task and model, each seed's sequences to solve at each T (a model
  censored at a shorter T than it solved shows its wrong counts)."""
  (path, data), = sources
  points = data["learning_cost"]["points"]
  lengths = sorted({p["length"] for p in points if p["task"] == "adding"})
  rows = []
  for task in dict.fromkeys(p["task"] for p in points):
    tp = [p for p in points if p["task"] == task]
    task_lengths = sorted({p["length"] for p in tp})
    cap = fm.seqs(next(p["cap_sequences"] for p in tp if p["status"] == "trained"))
    first = f"{task}, {cap}" if task_lengths == lengths else f"{task} T={task_lengths[0]}, {cap}"
    for i, model in enumerate(dict.fromkeys(p["model"] for p in tp)):
      mp = {p["length"]: p for p in tp if p["model"] == model}
      name = _SHORT[model]
      if task == "copy" and model == "transformer":
        name = "causal " + name
      params = next(p["params"] for p in mp.values() if p.get("params"))
      cells, solved_before = [], False
      for t in (lengths if task_lengths == lengths else task_lengths):
        p = mp.get(t)
        cells.append(_solved_cell(p, wrong=solved_before))
        solved_before = solved_before or bool(p and p["status"] == "trained" and lc.median(p))
      cells += [""] * (len(lengths) - len(cells))
      rows.append([first if i == 0 else "", f"{name} ({fm.kparams(params)})"] + cells)
  return fm.table(["task, cap", "model (params)"] + [f"T={t}" for t in lengths], rows)


def _rate(lr: float) -> str:
  """0.003 -> '3e-3'."""
  mantissa, exp = f"{lr:.0e}".split("e")
  return f"{mantissa}e{int(exp)}"


def transformer_schedule(sources, options, doc):
  """The schedule probe (first source) beside the constant-rate grid (second): median and each
  seed's sequences per schedule and T; the recipe's peak rate (`bold=`) in bold."""
  (path, probe), (grid_path, grid) = sources
  grid_points = lc.merged([(grid_path, grid)], {"task": "adding"})
  lengths = sorted({e["T"] for e in probe})
  bold = float(options.get("bold", "nan"))
  rows = [[f"constant {_rate(3e-3)} ({grid_path.rsplit('/', 1)[0]})"]
          + [lc.cell(grid_points[("transformer", t)][1], "seeds", True) for t in lengths]]
  for lr in dict.fromkeys(e["peak_lr"] for e in probe):
    row = [f"rsqrt, warmup {probe[0]['warmup_steps']}, peak {_rate(lr)}"]
    for t in lengths:
      e = next((e for e in probe if e["peak_lr"] == lr and e["T"] == t), None)
      text = "" if e is None else lc.cell(dict(e, status="trained"), "seeds", True)
      if e is not None and lr == bold:
        head, _, rest = text.partition(" ")
        text = f"**{head}** {rest}"
      row.append(text)
    rows.append(row)
  return fm.table(["schedule, peak rate"] + [f"T={t}" for t in lengths], rows)


def seeds_of_point(sources, options, doc):
  """One learning-cost point's seeds: solving step, sequences, wrong at the end; the median."""
  points = lc.merged(sources, options)
  (_, p), = [v for (m, t), v in points.items() if m == options["model"] and t == int(options["T"])]
  rows = []
  for s in p["seeds"]:
    per_step = s["solved_sequences"] / s["solved_step"] if not s["censored"] else None
    at_cap = per_step and s["solved_sequences"] == p["cap_sequences"]
    step = "censored" if s["censored"] else fm.seqs(s["solved_step"])
    rows.append([s["seed"], step + (" (the last evaluation, at the cap)" if at_cap else ""),
                 "-" if s["censored"] else fm.seqs(s["solved_sequences"]), s["final_wrong"]])
  rows.append(["median", "", f"**{fm.seqs(lc.median(p))}**", ""])
  wrong_of = fm.seqs(p["seeds"][0]["final_sequences"])
  return fm.table(["seed", "solved at step", "sequences", f"wrong of {wrong_of} at the end"], rows)


def growth_over(sources, options, doc):
  """A model's median at each T (each from the source `use=` names) and its ratio to the first."""
  points = lc.merged(sources, options)
  series = sorted((t, lc.median(p)) for (m, t), (_, p) in points.items() if m == options["model"])
  base = series[0][1]
  ratios = ["1"] + [f"{v / base:.1f}x" for _, v in series[1:]]
  ratios[-1] = f"**{ratios[-1]}**"
  return fm.table(["T"] + [str(t) for t, _ in series],
                  [["median sequences to solve"] + [fm.seqs(v) for _, v in series],
                   [f"over T={series[0][0]}"] + ratios])


def _mse(v: float) -> str:
  return f"{v:.4f}" if v < 0.01 else f"{v:.3f}"


def long_slice(sources, options, doc):
  """The H200 slice (results.csv): per model and T, seeds solved, median sequences (a censored
  seed counts as more than the cap), final MSE and wrong count per seed."""
  (path, rows_in), = sources
  cap = int(options["cap"])
  rows = []
  for key in dict.fromkeys((r["model"], r["seq_len"]) for r in rows_in):
    rs = [r for r in rows_in if (r["model"], r["seq_len"]) == key]
    solved = [r for r in rs if r["censored"] == "False"]
    values = sorted(float(r["solved_sequences"]) if r in solved else np.inf for r in rs)
    m = statistics.median(values)
    med = f"censored (> {fm.seqs(cap)})" if not np.isfinite(m) else fm.seqs(m)
    if np.isfinite(m) and len(solved) < len(rs):
      med += f" ({len(rs) - len(solved)} seed censored)"
    rows.append([fm.LABELS[key[0]], key[1], f"{len(solved)}/{len(rs)}", med,
                 ", ".join(_mse(float(r["final_mse"])) for r in rs),
                 ", ".join(r["final_wrong"] for r in rs)])
  n = rs[0]["final_sequences"] if "final_sequences" in rs[0] else "2560"
  return fm.table(["model", "T", "solved", "median sequences to solve",
                   f"final MSE ({len(rs)} seeds)", f"wrong of {n}"], rows)


def lr_sweep(sources, options, doc):
  """Eval MSE per model and rate (the lowest in bold) and the rate it chose."""
  (path, rows_in), = sources
  rates = sorted({float(r["lr"]) for r in rows_in})
  rows = []
  for model in dict.fromkeys(r["model"] for r in rows_in):
    mse = {float(r["lr"]): float(r["eval_loss"]) for r in rows_in if r["model"] == model}
    best = min(mse, key=mse.get)
    rows.append([model] + [f"**{mse[lr]:.4f}**" if lr == best else f"{mse[lr]:.4f}" for lr in rates]
                + [_rate(best)])
  return fm.table(["model"] + [_rate(lr) for lr in rates] + ["chosen"], rows)


def lru_copy(sources, options, doc):
  """Per seed: the step (sequences) it was solved at and its accuracy at the end."""
  (path, rows_in), = sources
  rows = [[r["seed"], f"{int(r['solved_step']):,} ({int(r['solved_sequences']):,})",
           f"{float(r['eval_accuracy']):.4f}"] for r in rows_in]
  return fm.table(["seed", "solved at step (sequences)", f"step {rows_in[0]['steps']}"], rows)


def selective_copy(sources, options, doc):
  """Mamba against the LSTM per seed: solving step, test accuracy; the LSTM's validation accuracy
  at the step the slowest Mamba seed solved at."""
  (path, data), = sources
  runs = {(r["model"], r["seed"]): r for r in data["runs"]}
  seeds = sorted({s for _, s in runs})
  at = int(max(runs[("mamba", s)]["solved_step"] for s in seeds))

  def solved(r):
    if r["solved_step"] is None:
      return f"censored at {r['cap_steps']:,} ({r['cap_steps'] * r['batch_size']:,})"
    return f"step {int(r['solved_step']):,} ({int(r['solved_sequences']):,})"

  def test(r):
    f = r["final"]
    return f"{f['final_accuracy']:.4f} ({int(f['final_errors'])})"

  rows = []
  for s in seeds:
    m, l = runs[("mamba", s)], runs[("lstm", s)]
    val = dict((int(k), v) for k, v in l["eval_accuracy"])[at]
    rows.append([s, solved(m), test(m), f"{val:.3f}", solved(l), test(l)])
  scored = fm.seqs(runs[("mamba", seeds[0])]["final"]["final_scored"])
  return fm.table(["seed", "Mamba: solved at (sequences)",
                   f"Mamba: test accuracy (wrong symbols of {scored})",
                   f"LSTM: validation accuracy at step {at:,}", "LSTM: solved at",
                   "LSTM: test accuracy at its end"], rows)


def _mean_std(values, digits) -> str:
  if len(set(values)) == 1:
    return f"{values[0]:.{digits}f}"
  return f"{np.mean(values):.{digits}f} ± {np.std(values, ddof=1):.{digits}f}"


def long_range(sources, options, doc):
  """compare_medium: mean ± std over seeds of one task's metric per model and T."""
  (path, data), = sources
  task, metric, digits = options["task"], options["metric"], int(options.get("digits", "3"))
  rs = [r for r in data["long_range"] if r["task"] == task]
  lengths = [int(t) for t in options["lengths"].split(",")]
  rows = []
  for model in dict.fromkeys(r["model"] for r in rs):
    rows.append([model] + [
        _mean_std([r[metric] for r in rs if r["model"] == model and r["length"] == t], digits)
        for t in lengths])
  return fm.table([options["corner"].replace("_", " ")] + [f"T={t}" for t in lengths], rows)


def hochreiter_protocol(sources, options, doc):
  """Each seed's step and training sequences at Hochreiter & Schmidhuber's stopping rule and its
  wrong test sequences, then the paper's row (results.json's "reference")."""
  data = sources[0][1]
  rows = [[s["seed"], "" if s["censored"] else f"{s['solved_step']:,}",
           f">{fm.seqs(s['cap_sequences'])}" if s["censored"] else fm.seqs(s["solved_sequences"]),
           s["final_wrong"]] for s in data["seeds"]]
  ref = data["reference"]
  rows.append(["Hochreiter & Schmidhuber 1997", "", fm.seqs(ref["training_sequences"]),
               ref["wrong_of_2560"]])
  return fm.table(["seed", "met the rule at step", "training sequences",
                   "wrong of 2,560 test sequences"], rows)
