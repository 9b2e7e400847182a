"""report.md sections of the "where attention struggles" part (attnlab/comparison/state_tracking.py):
accuracy at multiples of the training length on parity and flip-flop, and multi-query recall against
the number of key-value pairs beside each model's state bytes, each with a figure and a sentence
derived from the numbers (nothing in it is written before the runs)."""
import os

from attnlab.analysis import plots
from attnlab.analysis.report import fmt_seeds, seed_stats

SECTIONS = ("Where attention struggles: length generalisation",
            "Where attention struggles: multi-query recall")
KEEP, NEAR_CHANCE, CHANCE = 0.99, 0.6, 0.5  # a kept length; within 0.1 of chance on binary tasks
GUESS_TOL = 0.02  # MQAR: a mean accuracy this close to 1/P is a guess among the values present


def _cell(values: list) -> str:
  """Scores over seeds (4 digits) and each seed's exact errors of scored items."""
  scores = [v["score"] for v in values]
  counts = ", ".join("-" if v["errors"] is None else f"{v['errors']}/{v['scored']}" for v in values)
  return f"{fmt_seeds(scores, digits=4)} [{counts} wrong]"


def _state(p: dict) -> str:
  kind = "KV cache" if p["state"]["kind"] == "kv_cache" else "state"
  return f"{kind} {p['state']['bytes']:,} B"


def _mean(values: list) -> float:
  """Mean score over seeds; NaN (a gap in the figure) when no seed has one."""
  mean = seed_stats([v["score"] for v in values])["mean"]
  return float("nan") if mean is None else mean


def _names(models: list) -> str:
  return ", ".join(models) if models else "none"


def _min_score(values: list) -> float:
  """The worst seed's score (a missing one counts as 0): 'keeps' must hold on every seed."""
  return min((v["score"] if v["score"] is not None else 0.0) for v in values)


def length_sentence(task: str, length: int, factors: list, by_model: dict) -> str:
  """by_model: {model: {factor: [metrics per seed]}} -> what the table shows, from its numbers."""
  last, first = str(factors[-1]), str(factors[0])
  learned = [m for m, f in by_model.items() if _min_score(f[first]) >= KEEP]
  kept = [m for m, f in by_model.items() if _min_score(f[last]) >= KEEP]
  chance = [m for m, f in by_model.items() if _mean(f[last]) < NEAR_CHANCE]
  return (f"On {task} (trained at T={length}), {len(learned)} of {len(by_model)} models reach "
          f">= {KEEP} accuracy at {first}x on every seed ({_names(learned)}); at {last}x "
          f"(T={int(last) * length}) {len(kept)} keep it ({_names(kept)}) and {len(chance)} fall "
          f"below {NEAR_CHANCE}, near chance {CHANCE} ({_names(chance)}).")


def length_section(result: dict, out_dir: str) -> list:
  factors = result["factors"]
  lines = ["Every model trained at one length T and evaluated at the end on held-out test sequences at "
           + ", ".join(f"{f}x" for f in factors) + " T (config.eval_lengths). Cells: accuracy, mean ± std "
           "(ddof=1) over seeds with each seed's value, then each seed's exact wrong / scored count "
           "(parity: steps; flip-flop: reads). Delétang et al. 2023: the LSTM generalises on parity, "
           "the Transformer does not; Liu et al. 2023: Transformers make sporadic flip-flop errors.", ""]
  for task, length in result["lengths"].items():
    pts = [p for p in result["points"] if p["task"] == task]
    by_model = {}
    for p in pts:
      by_model.setdefault(p["model"], {str(f): [] for f in factors})
      for f in factors:
        by_model[p["model"]][str(f)].append(p["by_factor"][str(f)])
    info = {p["model"]: p for p in pts}
    lines += [f"### {task}", "",
              "| model (params, state at T) | " + " | ".join(f"{f}x (T={f * length})" for f in factors) + " |",
              "|---|" + "---|" * len(factors)]
    for model, cells in by_model.items():
      lines.append(f"| {model} ({info[model]['params']:,} params, {_state(info[model])}) | "
                   + " | ".join(_cell(cells[str(f)]) for f in factors) + " |")
    series = {m: (factors, [_mean(c[str(f)]) for f in factors], None)
              for m, c in by_model.items()}
    path = plots.metric_vs_length(series, os.path.join(out_dir, f"struggles_{task}.png"),
                                  f"{task}: accuracy vs length (trained at T={length})", "accuracy",
                                  baseline=CHANCE, xlabel="multiple of the training length")
    lines += ["", length_sentence(task, length, factors, by_model), "",
              f"![{task}]({os.path.basename(path)})", ""]
  return lines


def mqar_sentence(pairs: list, by_model: dict, state: dict) -> str:
  """by_model: {model: {pairs: [metrics per seed]}}; state: {model: state dict}."""
  best = {}
  for model, cells in by_model.items():
    ok = [p for p in pairs if _mean(cells[p]) >= 0.9]
    best[model] = max(ok) if ok else None
  text = "; ".join(f"{m} {'none' if b is None else f'P={b}'} ({state[m]['bytes']:,} B)"
                   for m, b in sorted(best.items(), key=lambda kv: state[kv[0]]["bytes"]))
  kept = [m for m, cells in by_model.items() if _min_score(cells[pairs[-1]]) >= KEEP]
  guess = {p: [m for m, cells in by_model.items() if abs(_mean(cells[p]) - 1 / p) <= GUESS_TOL]
           for p in pairs}
  guessing = "; ".join(f"P={p}: {_names(ms)}" for p, ms in guess.items() if ms)
  return (f"The most pairs each model recalls with mean accuracy >= 0.9, by state size: {text}. "
          f"At P={pairs[-1]}, {len(kept)} of {len(by_model)} keep >= {KEEP} on every seed "
          f"({_names(kept)}). Within {GUESS_TOL} of 1/P, the accuracy of answering one of the P values "
          "that occurred without knowing which key it was bound to: "
          + (guessing if guessing else "none") + ".")


def mqar_section(mqar: dict, out_dir: str) -> list:
  pairs = mqar["pairs"]
  by_model, state = {}, {}
  for p in mqar["points"]:
    by_model.setdefault(p["model"], {n: [] for n in pairs})[p["num_pairs"]].append(p)
    state[p["model"]] = p["state"]
  lines = [f"Multi-query associative recall (Arora et al. 2023) at T={mqar['seq_len']} against the number "
           "of key-value pairs P, at each model's fixed size, beside what it carries between steps: the "
           "recurrent state or the Transformer's KV cache at T, in bytes at float32 "
           "(attnlab.analysis.state_size). Cells: accuracy over queries, then wrong / scored queries.", "",
           "| model | state bytes | " + " | ".join(f"P={n}" for n in pairs) + " |",
           "|---|---|" + "---|" * len(pairs)]
  for model, cells in by_model.items():
    lines.append(f"| {model} | {_state({'state': state[model]})} | "
                 + " | ".join(_cell(cells[n]) for n in pairs) + " |")
  lines.append("| guessing one of the P values present | - | "
               + " | ".join(f"{1 / n:.4f}" for n in pairs) + " |")
  series = {m: (pairs, [_mean(c[n]) for n in pairs], None)
            for m, c in by_model.items()}
  path = plots.metric_vs_length(series, os.path.join(out_dir, "struggles_mqar.png"),
                                f"MQAR: accuracy vs key-value pairs (T={mqar['seq_len']})", "accuracy",
                                xlabel="key-value pairs P")
  return lines + ["", mqar_sentence(pairs, by_model, state), "", f"![mqar]({os.path.basename(path)})", ""]


def sections(result: dict, out_dir: str) -> list:
  """The part's report.md lines (both sections when it trained MQAR)."""
  lines = [f"## {SECTIONS[0]}", ""] + length_section(result, out_dir)
  if result.get("mqar"):
    lines += [f"## {SECTIONS[1]}", ""] + mqar_section(result["mqar"], out_dir)
  return lines


def commands(result: dict) -> list:
  return [p["command"] for p in result["points"] + (result.get("mqar") or {}).get("points", [])]
