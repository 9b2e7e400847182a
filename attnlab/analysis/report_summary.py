"""The summary that opens the comparison report: one line per finding, generated from the results
(which models solved which task at which T, attention against window=0, the gradient decay ranking
with R², seq2seq, clipping), each pointing at the section and figure that shows it."""
import re

import numpy as np

from attnlab.analysis import gradient_report


def _anchor(section: str) -> str:
  """The Markdown (GitHub) anchor of a '## section' heading."""
  return "#" + re.sub(r"[^a-z0-9 _-]", "", section.lower()).replace(" ", "-")


def _link(name: str) -> str:
  return f"[{name}]({_anchor(name)})"


# The report's sections each finding points at (report.SECTIONS' names).
LEARNING_COST, LONG_RANGE, GRADIENTS = "Learning cost", "Long-range tasks", "Gradient flow through time"
SEQ2SEQ, CLIPPING = "Seq2seq: accuracy by source length", "Exploding gradients and clipping"


def _median_of(point: dict):
  """A learning-cost point's median sequences to solve, or None when censored or not trained.
  Reads `median_sequences` (a number or {"median"|"estimate": ...}) if present, else `median`."""
  if point.get("status") != "trained" or point.get("median_censored"):
    return None
  m = point.get("median_sequences", point.get("median"))
  if isinstance(m, dict):
    m = m.get("median", m.get("estimate"))
  return float(m) if m is not None and np.isfinite(float(m)) else None


def _learning_cost_summary(lc: dict) -> list:
  lines = []
  for task in dict.fromkeys(p["task"] for p in lc["points"]):
    pts = [p for p in lc["points"] if p["task"] == task and p.get("status") == "trained"]
    parts = []
    for t in sorted({p["length"] for p in pts}):
      at = [p for p in pts if p["length"] == t]
      solved = sorted((p for p in at if _median_of(p) is not None), key=_median_of)
      failed = [p["model"] for p in at if _median_of(p) is None]
      text = f"T={t}: " + (", ".join(f"{p['model']} ({_median_of(p):,.0f})" for p in solved)
                           if solved else "no model solved it")
      parts.append(text + (f"; not solved by {', '.join(failed)}" if failed else ""))
    lines.append(f"- **{task}**, median training sequences to solve, cheapest first — "
                 + "; ".join(parts) + f" ({_link(LEARNING_COST)}, `learning_cost_{task}.png`).")
    lines += _window0_summary(task, pts)
  return lines


def _window0_summary(task: str, pts: list) -> list:
  """The Transformer against its window=0 ablation at each T (a control that removes all mixing
  between positions, not a measure of what content-based attention adds: see report.WINDOW0)."""
  by = {(p["model"], p["length"]): p for p in pts}
  both = sorted(t for m, t in by if m == "transformer" and ("transformer_window0", t) in by)
  if not both:
    return []
  word = lambda p: f"{_median_of(p):,.0f}" if _median_of(p) is not None else "not solved"
  cells = [f"T={t}: with attention {word(by[('transformer', t)])}, window=0 "
           f"{word(by[('transformer_window0', t)])}" for t in both]
  return [f"- **mixing positions** on {task}, median sequences to solve of the transformer and of "
          "the same model with window=0 (no position attends to another, so nothing mixes "
          "positions; the local-window and uniform-averaging controls isolate attention itself): "
          + "; ".join(cells) + f" ({_link(LEARNING_COST)}, `{task}` table)."]


def _gradient_summary(grad_norms: dict) -> list:
  lines = []
  by_length = gradient_report.by_length(grad_norms)
  for length, at in by_length.items():
    for when in ("init", "trained"):
      fits = {m: f[when] for m, f in at["fits"].items()}
      finite = sorted((m for m in fits if np.isfinite(fits[m]["decades_per_step"])),
                      key=lambda m: -fits[m]["decades_per_step"])
      if not finite:
        continue
      cut = [m for m in fits if np.isinf(fits[m]["decades_per_step"])]
      seeds = max(f["count"] for f in fits.values())
      lines.append(f"- **gradient decay** on {grad_norms['task']} at T={length} ({when}, {seeds} seed(s)), "
                   "fastest first, decades/step (R²): "
                   + ", ".join(f"{m} {fits[m]['decades_per_step']:.4f} ({fits[m]['r2']:.2f})"
                               for m in finite)
                   + (f"; no gradient beyond the read-out step: {', '.join(cut)}" if cut else "")
                   + f" ({_link(GRADIENTS)}, `{gradient_report.figure(when, length, grad_norms)}`).")
  return lines


def _finite_mean(values):
  finite = [float(v) for v in values if v is not None and np.isfinite(v)]
  return float(np.mean(finite)) if finite else None


def _long_range_summary(rows: list) -> list:
  lines = []
  for task in dict.fromkeys(r["task"] for r in rows):
    longest = max(r["length"] for r in rows if r["task"] == task)
    at = [r for r in rows if r["task"] == task and r["length"] == longest]
    means = {m: _finite_mean([r.get("eval_score") for r in at if r["model"] == m])
             for m in dict.fromkeys(r["model"] for r in at)}
    ranked = sorted((m for m in means if means[m] is not None), key=lambda m: -means[m])
    lines.append(f"- **{task}** at its longest T={longest}, mean eval score, best first: "
                 + ", ".join(f"{m} {means[m]:.3f}" for m in ranked)
                 + f" ({_link(LONG_RANGE)}, `score_vs_length_{task}.png`).")
  return lines


def summary(results: dict, grad_norms) -> list:
  """The report's opening: what was found, one line per finding, generated from the results and
  pointing at the section (and figure) that shows it."""
  lines = []
  if results.get("learning_cost"):
    lines += _learning_cost_summary(results["learning_cost"])
  if results.get("long_range"):
    lines += _long_range_summary(results["long_range"])
  if grad_norms and grad_norms.get("fits"):
    lines += _gradient_summary(grad_norms)
  if results.get("seq2seq"):
    s2s = results["seq2seq"]["models"]
    lines.append(f"- **seq2seq** on {results['seq2seq']['task']}, greedy exact match: "
                 + ", ".join(f"{m} {v['exact']:.3f}" for m, v in s2s.items())
                 + f" ({_link(SEQ2SEQ)}, `seq2seq_by_length.png`).")
  if results.get("clipping"):
    runs = results["clipping"]["runs"]
    off, on = [r for r in runs if not r["clip_norm"]], [r for r in runs if r["clip_norm"]]
    div = lambda group: sum(r["diverged_step"] is not None for r in group)
    lines.append(f"- **clipping**: {div(off)}/{len(off)} unclipped runs diverged, {div(on)}/{len(on)} "
                 f"clipped ones ({_link(CLIPPING)}).")
  return ["## Summary", ""] + (lines or ["(no part with results ran)"]) + [""]
