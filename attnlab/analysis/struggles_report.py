"""report.md sections of the "where attention struggles" part (attnlab/comparison/state_tracking.py):
what each run needed to meet its task's criterion (or "> cap", censored), parity at each test length
and flip-flop on its sparse and dense tails, MQAR accuracy against state bytes as the width grows
(Zoology's figure), and Mamba against its time-invariant ablation on selective copying. Every
sentence is derived from the numbers (nothing in it is written before the runs)."""
import os

import numpy as np

from attnlab.analysis import plots
from attnlab.analysis.report import fmt_seeds, seed_stats

SECTIONS = ("Where attention struggles: training to the criterion",
            "Where attention struggles: length generalisation and tails",
            "Where attention struggles: recall against state size",
            "Where attention struggles: selection")
KEEP, NEAR_CHANCE, CHANCE = 0.99, 0.6, 0.5  # a kept test; within 0.1 of chance on binary tasks
RECALLS = 0.9  # MQAR: the mean accuracy that counts as recalling the pairs
# Gu & Dao 2023, Table 1 (selective copying accuracy, /work/shared/REFERENCES.md): the no-gate
# architecture with an LTI S4 layer and with the selective S6 layer.
MAMBA_TABLE1 = {"S4 (time-invariant), no gate": 18.3, "S6 (selective), no gate": 97.0}


def solved_text(p: dict) -> str:
  """One run's sequences to meet the criterion, or '> cap' when censored."""
  if p["solved_sequences"] is None:
    return f"> {p['cap_sequences']:,}"
  return f"{p['solved_sequences']:,}"


def median_text(points: list) -> str:
  """Median over seeds of the sequences to solve (censored = above the cap): '> cap' when the
  median falls on a censored seed."""
  values = [np.inf if p["solved_sequences"] is None else p["solved_sequences"] for p in points]
  median = float(np.median(values))
  return f"> {points[0]['cap_sequences']:,}" if not np.isfinite(median) else f"{median:,.0f}"


def _cell(values: list) -> str:
  """Scores over seeds (4 digits), each seed's exact wrong / scored count, and the error rate of
  all seeds pooled."""
  scores = [v["score"] for v in values]
  counts = ", ".join("-" if v["errors"] is None else f"{v['errors']}/{v['scored']}" for v in values)
  return f"{fmt_seeds(scores, digits=4)} [{counts} wrong; rate {error_rate(values):.2e}]"


def error_rate(values: list) -> float:
  """Wrong of scored items over all seeds pooled (NaN when none was scored)."""
  scored = sum(v["scored"] or 0 for v in values)
  return sum(v["errors"] or 0 for v in values) / scored if scored else float("nan")


def _mean(values: list) -> float:
  """Mean score over seeds; NaN (a gap in the figure) when no seed has one."""
  mean = seed_stats([v["score"] for v in values])["mean"]
  return float("nan") if mean is None else mean


def _min_score(values: list) -> float:
  """The worst seed's score (a missing one counts as 0): 'keeps' must hold on every seed."""
  return min((v["score"] if v["score"] is not None else 0.0) for v in values)


def _names(models) -> str:
  return ", ".join(models) if models else "none"


def _state(state: dict) -> str:
  kind = "KV cache" if state["kind"] == "kv_cache" else "state"
  return f"{kind} {state['bytes']:,} B"


def _by_model(points: list) -> dict:
  out = {}
  for p in points:
    out.setdefault(p["model"], []).append(p)
  return out


def cost_section(result: dict) -> list:
  lines = ["Each run trains until it meets its task's criterion at the training distribution "
           "(accuracy >= 0.99 at an evaluation on the geometric schedule) or to its cap; cells: "
           "training sequences per seed, '> cap' when censored, then the median (censored seeds "
           "count as above the cap).", "", "| task | model | sequences per seed | median |",
           "|---|---|---|---|"]
  groups = [(t, result["points"]) for t in result.get("tasks", {})]
  groups += [("mqar", (result.get("mqar") or {}).get("points", [])),
             ("selective_copy", (result.get("selective_copy") or {}).get("points", []))]
  for task, points in groups:
    for model, pts in _by_model([p for p in points if p["task"] == task]).items():
      for key, group in _split_mqar(pts):
        lines.append(f"| {task}{key} | {model} | {', '.join(solved_text(p) for p in group)} | "
                     f"{median_text(group)} |")
  return lines + [""]


def _split_mqar(pts: list) -> list:
  """Length-task points as one group; MQAR points grouped by (width, pairs)."""
  if pts and pts[0]["task"] == "mqar":
    keys = sorted({(p["width"], p["num_pairs"]) for p in pts})
    return [(f" width {w}, P={n}", [p for p in pts if (p["width"], p["num_pairs"]) == (w, n)])
            for w, n in keys]
  return [("", pts)]


def tests_sentence(task: str, tests: list, by_model: dict) -> str:
  """by_model: {model: {"final": [metrics per seed], test: [metrics per seed]}}."""
  learned = [m for m, c in by_model.items() if _min_score(c["final"]) >= KEEP]
  parts = [f"On {task}, {len(learned)} of {len(by_model)} models reach >= {KEEP} at the training "
           f"distribution on every seed ({_names(learned)})"]
  for test in tests:
    kept = [m for m, c in by_model.items() if _min_score(c[test]) >= KEEP]
    clean = [m for m, c in by_model.items() if all(v["errors"] == 0 for v in c[test])]
    chance = [m for m, c in by_model.items() if _mean(c[test]) < NEAR_CHANCE]
    parts.append(f"on {test}, {len(kept)} keep it ({_names(kept)}), {len(clean)} make no error on "
                 f"any seed ({_names(clean)}) and {len(chance)} fall below {NEAR_CHANCE}, near "
                 f"chance {CHANCE} ({_names(chance)})")
  return "; ".join(parts) + "."


def _test_x(test: dict):
  return test["params"].get("seq_len")


def tests_section(result: dict, out_dir: str) -> list:
  lines = ["Each run (restored at its solved step, or at the cap) scored on held-out test sets: "
           "'train' is the training distribution; the others change the task's parameters as "
           "named. Cells: accuracy, mean ± std (ddof=1) over seeds with each seed's value, then each "
           "seed's exact wrong / scored count and the pooled error rate. Delétang et al. 2023 train "
           "parity on lengths 1..40 and test 41..500: the LSTM generalises, the Transformer does "
           "not. Liu et al. 2023: Transformers make rare errors on the sparse FFL(0.98) and dense "
           "FFL(0.1) tails that an LSTM does not.", ""]
  for task, info in result.get("tasks", {}).items():
    pts = [p for p in result["points"] if p["task"] == task]
    tests = info["tests"]
    by_model = {m: {"final": [p["final"] for p in ps], **{t: [p["tests"][t] for p in ps] for t in tests}}
                for m, ps in _by_model(pts).items()}
    info_of = {p["model"]: p for p in pts}
    train = ", ".join(f"{k}={v}" for k, v in info["train"].items())
    lines += [f"### {task} (trained with {train})", "",
              "| model (params, state at T) | train | " + " | ".join(tests) + " |",
              "|---|---|" + "---|" * len(tests)]
    for model, cells in by_model.items():
      p = info_of[model]
      lines.append(f"| {model} ({p['params']:,} params, {_state(p['state'])}) | {_cell(cells['final'])} | "
                   + " | ".join(_cell(cells[t]) for t in tests) + " |")
    lines += ["", tests_sentence(task, tests, by_model), ""]
    xs = [_test_x(pts[0]["tests"][t]) for t in tests] if pts else []
    if pts and len(set(xs)) == len(xs) and None not in xs:  # a length per test: plot against it
      series = {m: (xs, [_mean(c[t]) for t in tests], None) for m, c in by_model.items()}
      path = plots.metric_vs_length(series, os.path.join(out_dir, f"struggles_{task}.png"),
                                    f"{task}: accuracy at each test length", "accuracy",
                                    baseline=CHANCE, xlabel="test length")
      lines += [f"![{task}]({os.path.basename(path)})", ""]
  return lines


def mqar_sentence(pairs: int, by_model: dict) -> str:
  """by_model: {model: [(state bytes, [metrics per seed])]} at `pairs` -> the least state each model
  needs to recall (mean >= RECALLS)."""
  parts = []
  for model, cells in by_model.items():
    ok = [b for b, values in sorted(cells, key=lambda c: c[0]) if _mean(values) >= RECALLS]
    parts.append(f"{model} {f'{ok[0]:,} B' if ok else 'none of its widths'}")
  return (f"At P={pairs}, the least state (or KV cache) with mean accuracy >= {RECALLS}: "
          + "; ".join(parts) + ".")


def mqar_section(mqar: dict, out_dir: str) -> list:
  lines = [f"Multi-query associative recall (Arora et al. 2023, Zoology) at T={mqar['seq_len']}: every "
           f"model at widths {mqar['widths']}, against what it carries between steps, the recurrent "
           "state or the Transformer's KV cache at T, in bytes at float32 "
           "(attnlab.analysis.state_size). Zoology: attention stays near 1 at every width, the "
           "fixed-state models climb with width.", ""]
  for n in mqar["pairs"]:
    pts = [p for p in mqar["points"] if p["num_pairs"] == n]
    by_model = {}
    lines += [f"### P={n} (guessing one of the P values present: {1 / n:.4f})", "",
              "| model | width | state bytes | accuracy | sequences to solve |", "|---|---|---|---|---|"]
    for model, ps in _by_model(pts).items():
      for w in sorted({p["width"] for p in ps}):
        group = [p for p in ps if p["width"] == w]
        by_model.setdefault(model, []).append((group[0]["state"]["bytes"], [p["final"] for p in group]))
        lines.append(f"| {model} | {w} | {_state(group[0]['state'])} | "
                     f"{_cell([p['final'] for p in group])} | {median_text(group)} |")
    series = {m: ([b for b, _ in cells], [_mean(v) for _, v in cells], None)
              for m, cells in by_model.items()}
    path = plots.metric_vs_length(series, os.path.join(out_dir, f"struggles_mqar_p{n}.png"),
                                  f"MQAR: accuracy vs state size (T={mqar['seq_len']}, P={n})",
                                  "accuracy", xlabel="state bytes (KV cache for attention)")
    lines += ["", mqar_sentence(n, by_model), "", f"![mqar P={n}]({os.path.basename(path)})", ""]
  return lines


def selection_section(sc: dict) -> list:
  task = ", ".join(f"{k}={v}" for k, v in sc["task"].items())
  by_model = _by_model(sc["points"])
  lines = [f"Selective copying ({task}): Mamba (selective S6) against mamba_lti, the same block "
           "whose dt, B and C are learned constants (time-invariant, as S4). Our blocks keep the "
           "SiLU gate; the paper's numbers beside are its no-gate rows.", "",
           "| model | accuracy | sequences to solve |", "|---|---|---|"]
  for model, ps in by_model.items():
    lines.append(f"| {model} | {_cell([p['final'] for p in ps])} | {median_text(ps)} |")
  lines += [f"| Gu & Dao 2023 Table 1: {name} | {acc / 100:.3f} | - |" for name, acc in MAMBA_TABLE1.items()]
  means = {m: _mean([p["final"] for p in ps]) for m, ps in by_model.items()}
  lines += ["", "Mean accuracy: " + "; ".join(f"{m} {v:.4f}" for m, v in means.items()) + ".", ""]
  return lines


def sections(result: dict, out_dir: str) -> list:
  """The part's report.md lines (the MQAR and selection sections when it trained them)."""
  lines = [f"## {SECTIONS[0]}", ""] + cost_section(result)
  if result.get("tasks"):
    lines += [f"## {SECTIONS[1]}", ""] + tests_section(result, out_dir)
  if result.get("mqar"):
    lines += [f"## {SECTIONS[2]}", ""] + mqar_section(result["mqar"], out_dir)
  if result.get("selective_copy"):
    lines += [f"## {SECTIONS[3]}", ""] + selection_section(result["selective_copy"])
  return lines


def commands(result: dict) -> list:
  return [p["command"] for p in result["points"] + (result.get("mqar") or {}).get("points", [])
          + (result.get("selective_copy") or {}).get("points", [])]
