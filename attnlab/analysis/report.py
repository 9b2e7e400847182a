"""report.md of a comparison: tables against the baselines and the published numbers, and figures.

Sections: long-range table (eval score and loss per model x length, seeds as mean ± std, baseline
beside it), accuracy vs length, gradient flow (curves at init and trained, decay fits, forget
gates), clipping, seq2seq by source length, attention maps, and the command behind every result.
"""
import os
from collections import defaultdict

import numpy as np

from attnlab import files
from attnlab.analysis import plots

SECTIONS = ("Long-range tasks", "Score against length", "Gradient flow through time",
            "Exploding gradients and clipping", "Seq2seq: accuracy by source length",
            "Attention maps", "Commands")

REFERENCES = """Published reference points (../shared/REFERENCES.md): Hochreiter & Schmidhuber 1997
solved adding at T=100 with 74k training sequences (1 error in 2560) and at T=1000 with 853k;
the copy task's LSTM stays at the baseline at T=1000 (Bai et al. 2018); Pascanu et al. 2013 bound
vanishing at largest singular value < 1/gamma (gamma = 1 for tanh); Bahdanau et al. 2015:
RNNsearch does not degrade with sentence length while RNNencdec does."""


def _mean_std(values):
  values = [v for v in values if v is not None and np.isfinite(v)]
  if not values:
    return None, None
  return float(np.mean(values)), float(np.std(values))


def _fmt(mean, std, digits=3):
  if mean is None:
    return "-"
  return f"{mean:.{digits}f}" if not std else f"{mean:.{digits}f} ± {std:.{digits}f}"


def long_range_table(rows: list) -> tuple:
  """Markdown lines per task, and {task: {model: (lengths, means, stds)}} for the plot."""
  lines, series = [], {}
  by_task = defaultdict(list)
  for r in rows:
    by_task[r["task"]].append(r)
  for task, task_rows in by_task.items():
    lengths = sorted({r["length"] for r in task_rows})
    models = list(dict.fromkeys(r["model"] for r in task_rows))
    first = task_rows[0]
    lines += [f"### {task}", "",
              f"eval_score (higher is better) and eval_loss; baseline loss {first['baseline']:.4f} "
              f"({first['baseline_name']}). Mean ± std over {len({r['seed'] for r in task_rows})} "
              "seed(s).", "",
              "| model | " + " | ".join(f"{t} score | {t} loss" for t in lengths) + " |",
              "|---|" + "---|---|" * len(lengths)]
    series[task] = {}
    for model in models:
      cells, means, stds = [], [], []
      for t in lengths:
        point = [r for r in task_rows if r["model"] == model and r["length"] == t]
        score = _mean_std([r.get("eval_score") for r in point])
        loss = _mean_std([r.get("eval_loss") for r in point])
        cells += [_fmt(*score), _fmt(*loss, digits=4)]
        means.append(score[0] if score[0] is not None else np.nan)
        stds.append(score[1] or 0.0)
      lines.append(f"| {model} | " + " | ".join(cells) + " |")
      series[task][model] = (lengths, means, stds)
    lines.append("")
  return lines, series


def _gradient_section(grad_norms: dict, out_dir: str) -> list:
  lines = [f"Task `{grad_norms['task']}`, T={grad_norms['T']}: ||dL/dx_t|| of the loss at the last "
           "step, in float64, for 16 test sequences, against the distance T-1-t.", ""]
  for when in ("init", "trained"):
    if grad_norms[when]:
      path = plots.gradient_norms(grad_norms[when], os.path.join(out_dir, f"grad_norms_{when}.png"),
                                  f"gradient norm vs distance ({when})")
      lines.append(f"![gradient norms {when}]({os.path.basename(path)})")
  lines += ["", "| model | decades/step init | span init (decades) | decades/step trained | "
            "span trained | fit R² trained |", "|---|---|---|---|---|---|"]
  for model, fits in grad_norms["fits"].items():
    i, t = fits.get("init", {}), fits.get("trained", {})
    lines.append(f"| {model} | {i.get('decades_per_step', 0):.4f} | {i.get('span_decades', 0):.2f} | "
                 f"{t.get('decades_per_step', 0):.4f} | {t.get('span_decades', 0):.2f} | "
                 f"{t.get('r2', 0):.2f} |")
  if grad_norms.get("state_jacobian"):
    lines += ["", "Recurrent state: ||dh_T/dh_t|| decay and the mean top singular value of the step "
              "Jacobians dh_{t+1}/dh_t (Pascanu et al.: vanishing when it stays below 1).", "",
              "| model | span init | top σ init | span trained | top σ trained |", "|---|---|---|---|---|"]
    for model, sj in grad_norms["state_jacobian"].items():
      lines.append(f"| {model} | {sj['init']['fit']['span_decades']:.2f} | "
                   f"{sj['init']['top_singular_value_mean']:.3f} | "
                   f"{sj['trained']['fit']['span_decades']:.2f} | "
                   f"{sj['trained']['top_singular_value_mean']:.3f} |")
  for model, fg in grad_norms.get("forget_gate", {}).items():
    path = plots.curves({"mean forget gate": (fg["steps"], fg["mean"]),
                         "gradient span (decades)": (fg["steps"], fg["span_decades"])},
                        os.path.join(out_dir, f"forget_gate_{model}.png"),
                        f"{model}: forget gate and gradient span during training", "value", log=False)
    lines += ["", f"![forget gate {model}]({os.path.basename(path)})",
              f"{model}: mean forget gate {fg['mean'][0]:.3f} at init -> {fg['mean'][-1]:.3f} after "
              f"training; gradient span {fg['span_decades'][0]:.2f} -> {fg['span_decades'][-1]:.2f} "
              "decades."]
  return lines


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


def write_report(workdir: str, results: dict, grad_norms: dict, comparison) -> str:
  """Writes report.md and its figures into workdir (a local directory); returns its path."""
  out_dir = files.absolute(workdir)
  table, series = long_range_table(results["long_range"])
  lines = ["# attnlab comparison report", "",
           "Why recurrent networks fail on long-range dependencies, and how attention fixes that.", "",
           REFERENCES, "", f"## {SECTIONS[0]}", ""] + table + [f"## {SECTIONS[1]}", ""]
  for task, task_series in series.items():
    path = plots.metric_vs_length(task_series, os.path.join(out_dir, f"score_vs_length_{task}.png"),
                                  f"{task}: eval score vs length", "eval_score")
    lines.append(f"![{task}]({os.path.basename(path)})")
  lines += ["", f"## {SECTIONS[2]}", ""] + _gradient_section(grad_norms, out_dir)
  lines += ["", f"## {SECTIONS[3]}", ""] + _clipping_section(results["clipping"], out_dir)
  lines += ["", f"## {SECTIONS[4]}", ""] + _seq2seq_section(results["seq2seq"], out_dir)
  lines += ["", f"## {SECTIONS[5]}", ""] + _attention_section(results["attention"], out_dir)
  lines += ["", f"## {SECTIONS[6]}", "", "Every long-range result is an ordinary run; rerun one with:",
            ""] + [f"- `{r['command']}`" for r in results["long_range"]]
  lines += ["", "The whole comparison: `python -m experiments.main "
            f"--config={comparison.get('config_name', 'configs/compare.py')} --workdir={workdir}`", ""]
  path = os.path.join(out_dir, "report.md")
  files.write_text(path, "\n".join(lines))
  return path
