"""report.md section of the tuning part (attnlab/comparison/tuning.py): per model the chosen rate
and schedule, the grid it was chosen from (and whether it had to be widened), each candidate's
median sequences to solve per length, and the configs/common.py TUNED value the choice gives."""
import math

SECTION = "Tuning: one learning-rate and schedule sweep for every model"


def _sequences(length: dict) -> str:
  seeds = ", ".join("censored" if v is None else f"{v:,}" for v in length["seeds"])
  median = "censored" if length["censored"] else f"{length['median']:,.0f}"
  return f"{median} ({seeds})"


def _loss(value) -> str:
  return "-" if value is None or not math.isfinite(value) else f"{value:.4g}"


def _grid(rates) -> str:
  return ", ".join(f"{r:g}" for r in rates)


def summary_table(tuning: dict) -> list:
  """One row per model: the chosen schedule and rate, the grid, the rates added, and the edge."""
  lines = ["| model | schedule | learning rate | grid | widened by | at an edge |",
           "|---|---|---|---|---|---|"]
  for model, m in tuning["models"].items():
    lines.append(f"| {model} | {m['choice']['schedule']} | {m['choice']['lr']:g} | {_grid(m['grid'])} "
                 f"| {_grid(m['widened']) or '-'} | {'yes' if m['at_edge'] else 'no'} |")
  return lines


def candidates_table(model: str, m: dict) -> list:
  """Every (schedule, lr) of one model, best first: median sequences to solve per length (each
  seed's in brackets) and the mean median final eval loss; the chosen one in bold."""
  lengths = [p["length"] for p in m["candidates"][0]["lengths"]] if m["candidates"] else []
  header = ["schedule", "lr"] + [f"T={t}" for t in lengths] + ["final loss"]
  lines = [f"| {' | '.join(header)} |", "|" + "---|" * len(header)]
  for cand in m["candidates"]:
    chosen = (cand["schedule"], cand["lr"]) == (m["choice"]["schedule"], m["choice"]["lr"])
    cells = [cand["schedule"], f"{cand['lr']:g}"] + [_sequences(p) for p in cand["lengths"]]
    cells.append(_loss(cand["key"][2]))
    if chosen:
      cells = [f"**{x}**" for x in cells]
    lines.append(f"| {' | '.join(cells)} |")
  return lines


def section(tuning: dict) -> list:
  """The report.md lines of the tuning part."""
  schedules = "; ".join(f"{name}: {', '.join(f'{k}={v}' for k, v in s.items())}"
                        for name, s in tuning["schedules"].items())
  lines = [f"## {SECTION}", "",
           f"{tuning['task']} at T={', '.join(map(str, tuning['lengths']))}, seeds "
           f"{', '.join(map(str, tuning['seeds']))}, cap {tuning['steps']} steps, each run stopping "
           f"when solved. Schedules ({schedules}). The pick rule (attnlab/comparison/tuning.py): "
           "fewest lengths censored, then the lowest sum of median sequences to solve, then the "
           "lowest mean median final eval loss, then the lower rate; a choice at the grid's edge "
           "widens the grid.", ""]
  lines += summary_table(tuning) + [""]
  for model, m in tuning["models"].items():
    lines += [f"### {model}", ""] + candidates_table(model, m) + [""]
  lines += ["The choice as configs/common.py's TUNED:", "", "```python",
            f"TUNED = {tuning['tuned']!r}", "```", ""]
  return lines


def commands(tuning: dict) -> list:
  """The command that reruns each tuning run."""
  return [o["command"] for o in tuning["outcomes"]]
