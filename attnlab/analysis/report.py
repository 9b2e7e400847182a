"""report.md of a comparison: tables against the baselines and the published numbers, and figures.

Opens with a summary generated from the results (attnlab/analysis/report_summary.py), each line
pointing at its section and figure. Sections (for the parts that ran): long-range table (eval score
and loss per model x length, seeds as mean ± std with ddof=1 and every seed's value, the baseline per length, parameter counts),
accuracy vs length, gradient flow (attnlab/analysis/gradient_report.py: per length, curves at init and
trained, decay fits over seeds with R², state Jacobians, the decay during training), clipping,
seq2seq by source length, attention maps, learning cost (sequences to solve vs T, log-log, with
Hochreiter & Schmidhuber's numbers beside adding_h97, adding as they ran it), length
generalisation (1x, 2x, 4x the training length), and the command behind every result.
"""
import os
from collections import defaultdict

import numpy as np

from attnlab import files, layout
from attnlab.tasks.adding import HOCHREITER_RESULTS
from attnlab.analysis import gradient_report, plots, report_summary, survival

SECTIONS = ("Long-range tasks", "Score against length", "Gradient flow through time",
            "Exploding gradients and clipping", "Seq2seq: accuracy by source length",
            "Attention maps", "Learning cost", "Length generalisation", "Commands")

REFERENCES = """Published reference points (docs/references.md in the project): Hochreiter & Schmidhuber
1997 solved adding at T=100 with 74k training sequences (1 error in 2560) and at T=1000 with 853k;
the copy task's LSTM stays at the baseline at T=1000 (Bai et al. 2018); Pascanu et al. 2013 bound
vanishing at largest singular value < 1/gamma (gamma = 1 for tanh); Bahdanau et al. 2015:
RNNsearch does not degrade with sentence length while RNNencdec does."""

WINDOW0 = ("`transformer_window0` is the same Transformer with window=0: no position attends to another, "
           "so every output sees only its own token, and with a last-step readout nothing mixes "
           "positions at all: it fails by construction, so its gap to `transformer` is not what "
           "content-based attention contributes. The controls that do mix are "
           "`transformer_window1/4/16` (attention within k positions) and `transformer_uniform` "
           "(fixed causal averaging over the prefix); where window=0 matches `transformer`, the "
           "task was solved without mixing positions.")

# Hochreiter & Schmidhuber 1997, adding: T -> (training sequences to solve, wrong of 2560 test sequences).
HOCHREITER_ADDING = HOCHREITER_RESULTS
# The learning-cost task whose runs follow their protocol (adding variant hochreiter1997 and their
# stopping rule, configs/compare.py's adding_h97): their column stands beside it alone.
HOCHREITER_TASK = "adding_h97"
HOCHREITER_HEADER = "LSTM, Hochreiter & Schmidhuber 1997 (their protocol, as this task)"


def seed_stats(values) -> dict:
  """Mean and std (ddof=1) over the finite values; every seed's value kept, non-finite and missing
  (None) ones counted: 'finite' of 'count' seeds entered the mean."""
  values = [None if v is None else float(v) for v in values]
  finite = [v for v in values if v is not None and np.isfinite(v)]
  return {"mean": float(np.mean(finite)) if finite else None,
          "std": float(np.std(finite, ddof=1)) if len(finite) > 1 else None,
          "values": values, "nonfinite": sum(v is not None and not np.isfinite(v) for v in values),
          "finite": len(finite), "count": len(values)}


def fmt_seeds(values, digits=3) -> str:
  """'0.027 ± 0.070 (0.146, 0.027, 0.003)': mean ± std (ddof=1) of the finite seeds, then every
  seed's value ('-' for a missing one); '; 2/3 finite' when NaN/inf or missing seeds were left out
  of the mean, so it never silently averages fewer seeds than the table's header counts; '-' for no
  value at all."""
  st = seed_stats(values)
  if st["finite"] == 0 and not st["nonfinite"]:
    return "-"
  text = "-" if st["mean"] is None else f"{st['mean']:.{digits}f}"
  if st["std"] is not None:
    text += f" ± {st['std']:.{digits}f}"
  if st["count"] > 1 or st["finite"] < st["count"]:
    text += " (" + ", ".join("-" if v is None else f"{v:.{digits}f}" for v in st["values"]) + ")"
  if st["finite"] < st["count"]:
    text += f"; {st['finite']}/{st['count']} finite"
  return text


def _params(rows) -> str:
  counts = sorted({r["params"] for r in rows if r.get("params") is not None})
  if not counts:
    return ""
  return f" ({counts[0]:,} params)" if len(counts) == 1 else f" ({counts[0]:,}-{counts[-1]:,} params)"


def long_range_table(rows: list) -> tuple:
  """Markdown lines per task, and {task: {model: (lengths, means, stds)}} for the plot."""
  lines, series = [], {}
  by_task = defaultdict(list)
  for r in rows:
    by_task[r["task"]].append(r)
  for task, task_rows in by_task.items():
    lengths = sorted({r["length"] for r in task_rows})
    models = list(dict.fromkeys(r["model"] for r in task_rows))
    baselines = {t: next(r["baseline"] for r in task_rows if r["length"] == t) for t in lengths}
    lines += [f"### {task}", "",
              f"eval_score (higher is better) and eval_loss; the last row is the baseline loss at each "
              f"length ({task_rows[0]['baseline_name']}). Mean ± std (ddof=1) over "
              f"{len({r['seed'] for r in task_rows})} seed(s), each seed's value in brackets.", "",
              "| model | " + " | ".join(f"{t} score | {t} loss" for t in lengths) + " |",
              "|---|" + "---|---|" * len(lengths)]
    series[task] = {}
    for model in models:
      cells, means, stds = [], [], []
      for t in lengths:
        point = [r for r in task_rows if r["model"] == model and r["length"] == t]
        scores = [r.get("eval_score") for r in point]
        cells += [fmt_seeds(scores), fmt_seeds([r.get("eval_loss") for r in point], digits=4)]
        st = seed_stats(scores)
        means.append(np.nan if st["mean"] is None else st["mean"])
        stds.append(st["std"] or 0.0)
      model_rows = [r for r in task_rows if r["model"] == model]
      lines.append(f"| {model}{_params(model_rows)} | " + " | ".join(cells) + " |")
      series[task][model] = (lengths, means, stds)
    lines.append("| baseline | " + " | ".join(f"- | {baselines[t]:.4f}" for t in lengths) + " |")
    if "transformer_window0" in models:
      lines += ["", WINDOW0]
    lines.append("")
  return lines, series


def _label(r: dict) -> str:
  return f"r={r['radius']} clip={r['clip_norm'] or 'off'} seed={r.get('seed', 0)}"


def _num(x, fmt=".3g") -> str:
  return "-" if x is None else format(x, fmt)


TRAINED_FRACTION = 0.75  # a clipping run "trained" when its held-out loss ends below this x baseline


def _trained(r: dict, baseline: float) -> bool:
  """Did not diverge and ends clearly below the baseline (held-out loss < TRAINED_FRACTION x
  baseline; the final train loss for a run without one)."""
  loss = r.get("eval_loss") if r.get("eval_loss") is not None else r.get("final_train_loss")
  return (r.get("diverged_step") is None and loss is not None and bool(np.isfinite(loss))
          and loss < TRAINED_FRACTION * baseline)


def clipping_summary(clipping: dict) -> str:
  """What the clipping runs show, in words generated from their numbers: per radius, how many
  seeds diverged (and when) without and with clipping, and the held-out loss of those that did not."""
  base, runs = clipping["baseline"], clipping["runs"]
  sentences = []
  for radius in dict.fromkeys(r["radius"] for r in runs):
    parts = []
    for tau in dict.fromkeys(r["clip_norm"] for r in runs):
      group = [r for r in runs if r["radius"] == radius and r["clip_norm"] == tau]
      if not group:
        continue
      div = [r["diverged_step"] for r in group if r["diverged_step"] is not None]
      nonfinite = [r["nonfinite_step"] for r in group if r.get("nonfinite_step") is not None]
      text = (f"{'without clipping' if not tau else f'with clipping at τ={tau}'} {len(div)}/{len(group)} "
              f"seeds diverged" + (f" (at step {', '.join(str(d) for d in div)}" if div else "")
              + (f"; non-finite from step {', '.join(str(d) for d in nonfinite)}" if nonfinite else "")
              + (")" if div else ""))
      alive = [r for r in group if r["diverged_step"] is None]
      if alive:
        losses = ", ".join(_num(r.get("eval_loss"), ".4f") for r in alive)
        trained = sum(_trained(r, base) for r in alive)
        text += (f"; {'the others' if div else 'all'} ended at held-out loss {losses}, "
                 f"{trained}/{len(alive)} clearly below the baseline (< {TRAINED_FRACTION:g}×)")
      parts.append(text)
    sentences.append(f"At radius {radius}: " + "; ".join(parts) + ".")
  unclipped = [r for r in runs if not r["clip_norm"]]
  # radii where every unclipped run diverged and every clipped one trained / only stayed finite
  rescued, kept = [], []
  for radius in dict.fromkeys(r["radius"] for r in runs):
    off = [r for r in unclipped if r["radius"] == radius]
    on = [r for r in runs if r["clip_norm"] and r["radius"] == radius]
    if not (off and on and all(r["diverged_step"] is not None for r in off)):
      continue
    if all(_trained(r, base) for r in on):
      rescued.append(radius)
    elif all(r["diverged_step"] is None for r in on):
      kept.append(radius)
  kept_text = (f" At radius {', '.join(str(x) for x in kept)} clipping kept every run finite, but not "
               "every clipped run trained clearly below the baseline." if kept else "")
  if not any(r["diverged_step"] is not None for r in unclipped):
    verdict = ("No run diverged without clipping, so this setting does not show what clipping "
               "prevents.")
  elif rescued:
    verdict = (f"So at radius {', '.join(str(x) for x in rescued)} clipping turned runs that diverged "
               "into runs that trained clearly below the baseline, at the same learning rate and "
               "initialisation.")
  else:
    verdict = ("Runs diverged without clipping, but at no radius where every unclipped run diverged did "
               "every clipped run train clearly below the baseline: here clipping does not rescue "
               "training.")
  return (" ".join(sentences) + f" (Baseline {base:.4f}: {clipping['baseline_name']}.) " + verdict
          + kept_text)


def _clipping_section(clipping: dict, out_dir: str) -> list:
  runs = clipping["runs"]
  loss = {_label(r): (r["steps"], r["train_loss"]) for r in runs}
  before = {_label(r): (r["steps"], r["grad_norm"]) for r in runs}
  after = {_label(r): (r["steps"], r["grad_norm_clipped"]) for r in runs if r["clip_norm"]}
  p1 = plots.curves(loss, os.path.join(out_dir, "clipping_loss.png"), "tanh RNN training loss", "loss")
  p2 = plots.curves(before, os.path.join(out_dir, "clipping_grad_norm.png"),
                    "global gradient norm before clipping", "||g||")
  figures = [f"![loss]({os.path.basename(p1)}) ![grad norm before]({os.path.basename(p2)})"]
  if after:
    p3 = plots.curves(after, os.path.join(out_dir, "clipping_grad_norm_clipped.png"),
                      "global gradient norm after clipping (what the optimizer gets)", "||g||")
    figures.append(f"![grad norm after]({os.path.basename(p3)})")
  init = {f"r={r['radius']}": r["init_input_grad_norms"] for r in runs
          if not r["clip_norm"] and r.get("init_input_grad_norms")}
  if init:
    p4 = plots.gradient_norms(init, os.path.join(out_dir, "clipping_init_norms.png"),
                              "tanh RNN at init: gradient norm vs distance by spectral radius")
    figures.append(f"![init norms]({os.path.basename(p4)})")
  momentum = f", momentum {clipping['momentum']}" if clipping.get("momentum") else ""
  lines = [f"A tanh RNN with W_hh orthogonal times r (spectral radius r) on `{clipping['task']}`, "
           f"T={clipping['seq_len']}, trained {clipping['steps']} steps by {clipping['optimizer']} "
           f"(learning rate {clipping['learning_rate']}{momentum}) with and without global-norm "
           "clipping (Pascanu et al. 2013: g ← τ g/‖g‖ when ‖g‖ > τ). A run diverged at the first "
           f"step whose loss is non-finite or above {clipping['divergence_factor']:g}× max(baseline, "
           "first loss); "
           "median ‖g‖ is over the finite steps; final train loss is the mean over the last 10% of "
           "steps.", "",
           clipping_summary(clipping), ""] + figures + [
           "", "| radius | clip τ | seed | max ‖g‖ before | median before | max ‖g‖ after | "
           "median after | diverged at step | non-finite from step | final train loss | eval loss |",
           "|---|---|---|---|---|---|---|---|---|---|---|"]
  for r in runs:
    b, a = r["grad_norm_stats"], r["grad_norm_clipped_stats"]
    lines.append(f"| {r['radius']} | {r['clip_norm'] or 'off'} | {r.get('seed', 0)} | {_num(b['max'])} | "
                 f"{_num(b['median'])} | {_num(a['max'])} | {_num(a['median'])} | "
                 f"{_num(r['diverged_step'], 'd')} | {_num(r.get('nonfinite_step'), 'd')} | "
                 f"{_num(r['final_train_loss'], '.4f')} | "
                 f"{_num(r['eval_loss'], '.4f')} |")
  return lines


def _seq2seq_section(seq2seq: dict, out_dir: str) -> list:
  series = {}
  lines = ["| model | exact match (all) | teacher-forced token accuracy |", "|---|---|---|"]
  for model, m in seq2seq["models"].items():
    lengths = sorted(int(k) for k in m["exact_by_length"])
    series[model] = (lengths, [m["exact_by_length"][k] if k in m["exact_by_length"] else
                               m["exact_by_length"][str(k)] for k in lengths], None)
    lines.append(f"| {model} | {m['exact']:.3f} | {m['eval_score'] or float('nan'):.3f} |")
  path = plots.metric_vs_length(series, os.path.join(out_dir, "seq2seq_by_length.png"),
                                f"{seq2seq['task']}: greedy exact match by source length",
                                "exact-match accuracy", xlabel="source length", log_x=False)
  return [f"Task `{seq2seq['task']}`, greedy decoding of held-out sequences (the analogue of "
          "Bahdanau et al.'s BLEU-by-length figure).", "", f"![by length]({os.path.basename(path)})",
          ""] + lines


def _attention_section(attention: dict, out_dir: str) -> list:
  lines = []
  for key, a in attention.items():
    if not key.startswith("transformer"):
      continue
    name = "transformer" if key == "transformer" else f"transformer_{a['task']}"
    for i, layer in enumerate(a["layers"]):
      path = plots.attention_map(layer, os.path.join(out_dir, f"attention_{name}_{i}.png"),
                                 f"Transformer on {a['task']} ({a['seq_len']}), layer {i}")
      lines.append(f"![{name} layer {i}]({os.path.basename(path)})")
  if "rnnsearch" in attention:
    a = attention["rnnsearch"]
    path = plots.attention_map(a["weights"], os.path.join(out_dir, "attention_rnnsearch.png"),
                               f"RNNsearch on {a['task']}", "source position", "output position")
    lines.append(f"![rnnsearch]({os.path.basename(path)})")
  return lines or ["(no attention model in this comparison)"]


def _sequences(v) -> str:
  return f"{v:,.0f}"


def _bound(v, cap) -> str:
  """A median or interval limit in sequences: "> cap" where unbounded (None); "≥ cap" on the cap
  (a run solved at the last evaluation: only known to lie at or past it)."""
  if v is None:
    return f"> {_sequences(cap)}"
  return f"≥ {_sequences(cap)}" if v >= cap else _sequences(v)


def _point_statistics(point: dict) -> dict:
  """The point's KM median fields: as recorded, or computed from its seeds (results recorded before
  they existed held only the median over seeds)."""
  if "median_ci95" in point:
    return point
  return survival.point_statistics([s["solved_sequences"] for s in point["seeds"]],
                                   point["cap_sequences"])


def _seed_cell(point: dict) -> str:
  """'12,800 (9,600–19,200); 9/10 solved; wrong ≤ 3 of 2560' for a trained point: the KM median and
  its 95% interval ('> cap' beyond the cap), or the point's status."""
  if point["status"] != "trained":
    return point["status"]
  cap, st = point["cap_sequences"], _point_statistics(point)
  lo, hi = st["median_ci95"]
  solved = sum(not s["censored"] for s in point["seeds"])
  text = (f"{_bound(st['median_sequences'], cap)} ({_bound(lo, cap)}–{_bound(hi, cap)}); "
          f"{solved}/{len(point['seeds'])} solved")
  wrong = [s["final_wrong"] for s in point["seeds"] if s.get("final_wrong") is not None]
  if wrong:
    text += f"; wrong ≤ {int(max(wrong))} of {int(point['seeds'][0]['final_sequences'])}"
  return text


def _exponent_cell(e: dict) -> str:
  """'0.52 (0.31–0.74), 3 points'; '≥ 1.70 (≥ 1.00–∞)' when a censored point entered at the cap."""
  if e["growth_exponent"] is None:
    if e["points"] < 2:
      return "none (" + ("beyond the cap at its only T" if e["censored_points"] else "one T") + ")"
    return f"none ({e['censored_points']} of {e['points']} points beyond the cap, not at the longest T)"
  ge = "≥ " if e["lower_bound"] else ""
  lo, hi = e["growth_exponent_ci95"] or (None, None)
  ci = f"{'-∞' if lo is None else f'{lo:.2f}'}–{'∞' if hi is None else f'{hi:.2f}'}"
  censored = f", {e['censored_points']} at the cap" if e["censored_points"] else ""
  return f"{ge}{e['growth_exponent']:.2f} ({ge}{ci}), {e['points']} points{censored}"


def _exponents(learning_cost: dict, task: str, task_points: list, models: list) -> dict:
  """{model: survival.model_exponent entry}: as recorded, or computed from the points."""
  recorded = learning_cost.get("exponents", {}).get(task, {})
  return {m: recorded[m] if "growth_exponent" in recorded.get(m, {}) else
          survival.model_exponent([p for p in task_points if p["model"] == m]) for m in models}


def _seeds_note(learning_cost: dict) -> tuple:
  """(the sentence on seeds, whether the table is only a preview)."""
  points = [p for p in learning_cost["points"] if p["status"] == "trained"]
  n = learning_cost.get("num_seeds") or max((len(p["seeds"]) for p in points), default=0)
  reused = learning_cost.get("seeds_reused_across_T", True)
  where = (f"seeds {learning_cost['seeds']} at every T" if reused and learning_cost.get("seeds")
           else f"{n} seeds per point drawn from (model, task, T, i), none reused across T")
  preview = reused or n < survival.MIN_SEEDS_TO_RANK
  note = (f" **Preview**: {n} seeds per point" + (", the same at every T" if reused else "") +
          f"; models are ranked only with >= {survival.MIN_SEEDS_TO_RANK} independent seeds per "
          "point." if preview else "")
  return f"Over {where}.{note}", preview


def _ranking_line(exponents: dict, preview: bool) -> str:
  if preview:
    return "Ranking by growth exponent: none (a preview: too few or shared seeds to rank)."
  ranking = survival.rank_exponents(exponents)
  text = ("Ranking by growth exponent (lower = cheaper to learn longer T; a < b only where the 95% "
          "intervals separate): " + survival.ranking_text(ranking))
  if ranking["unranked"]:
    text += "; no exponent: " + ", ".join(ranking["unranked"])
  return text + "."


def learning_cost_section(learning_cost: dict, out_dir: str) -> list:
  """Per task: the log-log figure, a table T x model of the Kaplan-Meier median of sequences to
  solve with its 95% interval ('> cap' beyond the cap), the growth exponent per model with its
  bootstrap interval, a ranking line (only separable models ranked), and on adding Hochreiter &
  Schmidhuber's LSTM."""
  seeds_note, preview = _seeds_note(learning_cost)
  lines = ["Training sequences (steps x batch) until the first evaluation that meets the task's criterion. "
           f"{seeds_note} A run that never met it within the cap is right-censored at the cap (counted "
           "as more than the cap, never dropped). Each cell: the Kaplan-Meier median over the seeds, "
           "its 95% interval in brackets (inverted from scipy's log-log band of the survival curve; "
           "`> cap` where the median or a limit lies beyond the cap, `≥ cap` where it sits on the cap: a run "
           "solved at the last evaluation), and how many seeds solved it. "
           "A model whose median is beyond the cap at T is not trained at longer T. Growth exponent: "
           "slope of log(KM median) on log T over the trained points, a median beyond the cap entering "
           "at the cap (so the exponent is a lower bound, `≥`), with a 95% percentile-bootstrap interval "
           "(seeds resampled within each T, censored runs kept; ∞ where more than 2.5% of resamples "
           "have a median beyond the cap).", ""]
  points = learning_cost["points"]
  for task in dict.fromkeys(p["task"] for p in points):
    task_points = [p for p in points if p["task"] == task]
    models = list(dict.fromkeys(p["model"] for p in task_points))
    lengths = sorted({p["length"] for p in task_points})
    series = {}
    for model in models:
      trained = sorted((p for p in task_points if p["model"] == model and p["status"] == "trained"),
                       key=lambda p: p["length"])
      series[model] = {"lengths": [p["length"] for p in trained],
                       "seeds": [[s["solved_sequences"] for s in p["seeds"]] for p in trained],
                       "medians": [p["median"] for p in trained],
                       "caps": [p["cap_sequences"] for p in trained]}
    path = plots.learning_cost(series, os.path.join(out_dir, f"learning_cost_{task}.png"),
                               f"{task}: training sequences to solve vs T (triangles: censored at the cap)")
    reference = task == HOCHREITER_TASK
    if reference:  # the 1997 lengths as rows even where this grid has no run
      lengths = sorted(set(lengths) | set(HOCHREITER_ADDING))
    params = {m: next((p["params"] for p in task_points if p["model"] == m and p.get("params")), None)
              for m in models}
    header = [f"{m} ({params[m]:,} params)" if params[m] else m for m in models]
    header += [HOCHREITER_HEADER] if reference else []
    lines += [f"### {task}", "", f"![learning cost {task}]({os.path.basename(path)})", "",
              "| T | " + " | ".join(header) + " |", "|---|" + "---|" * len(header)]
    for t in lengths:
      cells = []
      for m in models:
        point = next((p for p in task_points if p["model"] == m and p["length"] == t), None)
        cells.append("-" if point is None else _seed_cell(point))
      if reference:
        ref = HOCHREITER_ADDING.get(t)
        cells.append(f"{ref[0]:,}; wrong {ref[1]} of 2560" if ref else "-")
      lines.append(f"| {t} | " + " | ".join(cells) + " |")
    exps = _exponents(learning_cost, task, task_points, models)
    lines.append("| growth exponent | " + " | ".join(_exponent_cell(exps[m]) for m in models)
        + (" | " + "{:.2f} (3 points)".format(_reference_exponent()) if reference else "") + " |")
    lines += ["", _ranking_line(exps, preview)]
    if "transformer_window0" in models:
      lines += ["", WINDOW0]
    lines.append("")
  return lines


def _reference_exponent() -> float:
  t = sorted(HOCHREITER_ADDING)
  return float(np.polyfit(np.log(t), np.log([HOCHREITER_ADDING[k][0] for k in t]), 1)[0])


def generalisation_section(gen: dict) -> list:
  """Per task: model @ training T x factor -> eval_score (mean ± std over seeds, each seed beside)."""
  factors = gen["factors"]
  lines = ["Each trained run evaluated on held-out test sequences at factor x its training length "
           "(adding: a longer sequence; copy: a longer delay) with the training code's metrics; "
           "eval_score, mean ± std (ddof=1) over seeds with each seed's value.", ""]
  for task in dict.fromkeys(p["task"] for p in gen["points"]):
    pts = [p for p in gen["points"] if p["task"] == task]
    lines += [f"### {task}", "",
              "| model | part | trained T | " + " | ".join(f"{f}x" for f in factors) + " |",
              "|---|---|---|" + "---|" * len(factors)]
    for key in dict.fromkeys((p["model"], p.get("part", ""), p["length"]) for p in pts):
      group = [p for p in pts if (p["model"], p.get("part", ""), p["length"]) == key]
      cells = []
      for f in factors:
        values = [p["by_factor"][str(f)] for p in group]
        if any(isinstance(v, str) for v in values):
          cells.append(next(v for v in values if isinstance(v, str)))
        else:
          cells.append(fmt_seeds([v["eval_score"] for v in values]))
      lines.append(f"| {key[0]} | {key[1]} | {key[2]} | " + " | ".join(cells) + " |")
    lines.append("")
  return lines


def write_report(workdir: str, results: dict, grad_norms, comparison, extra=(), extra_commands=()) -> str:
  """Writes report.md and its figures into workdir (a local directory); returns its path.
  Sections appear for the parts that ran (results' keys; grad_norms None when gradients did not);
  `extra`: lines of further sections (parts that render their own), before the commands, whose
  list gains `extra_commands`."""
  out_dir = files.absolute(workdir)
  lines = (["# attnlab comparison report", "",
            "Why recurrent networks fail on long-range dependencies, and how attention fixes that.", ""]
           + report_summary.summary(results, grad_norms) + [REFERENCES, ""])
  if "long_range" in results:
    table, series = long_range_table(results["long_range"])
    lines += [f"## {SECTIONS[0]}", ""] + table + [f"## {SECTIONS[1]}", ""]
    for task, task_series in series.items():
      path = plots.metric_vs_length(task_series, os.path.join(out_dir, f"score_vs_length_{task}.png"),
                                    f"{task}: eval score vs length", "eval_score")
      lines.append(f"![{task}]({os.path.basename(path)})")
    lines.append("")
  if grad_norms is not None:
    lines += [f"## {SECTIONS[2]}", ""] + gradient_report.section(grad_norms, out_dir) + [""]
  if "clipping" in results:
    lines += [f"## {SECTIONS[3]}", ""] + _clipping_section(results["clipping"], out_dir) + [""]
  if "seq2seq" in results:
    lines += [f"## {SECTIONS[4]}", ""] + _seq2seq_section(results["seq2seq"], out_dir) + [""]
  if "attention" in results:
    lines += [f"## {SECTIONS[5]}", ""] + _attention_section(results["attention"], out_dir) + [""]
  if "learning_cost" in results:
    lines += [f"## {SECTIONS[6]}", ""] + learning_cost_section(results["learning_cost"], out_dir)
  if "generalisation" in results:
    lines += [f"## {SECTIONS[7]}", ""] + generalisation_section(results["generalisation"])
  lines += list(extra)
  commands = [r["command"] for r in results.get("long_range", [])]
  commands += [s["command"] for p in results.get("learning_cost", {}).get("points", []) for s in p["seeds"]]
  commands += list(extra_commands)
  lines += [f"## {SECTIONS[8]}", "", "Every result is an ordinary run; rerun one with:",
            ""] + [f"- `{layout.portable_command(c)}`" for c in commands]
  lines += ["", "The whole comparison: `python -m attnlab train --config="
            f"{layout.name_form(comparison.get('config_name', 'compare'))} --workdir={workdir}`", ""]
  if results.get("versions"):
    lines += ["Ran with " + ", ".join(f"{k} {v}" for k, v in results["versions"].items()
                                      if v is not None) + ".", ""]
  path = os.path.join(out_dir, "report.md")
  files.write_text(path, "\n".join(lines))
  return path
