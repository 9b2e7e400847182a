"""Renderers of the struggles recording (parity, flip-flop, MQAR): compare.py:struggles's
results.json (`struggles.points`: accuracy by length factor; `struggles.mqar.points`)."""
import numpy as np

from attnlab.docs import formats as fm

# The recording trained the Transformer at a constant rate, before Vaswani's schedule became its
# recipe: every table of it says so in the Transformer's row.
_LABELS = dict(fm.LABELS, lstm="LSTM", transformer="Transformer, constant rate")


def _points(data) -> list:
  return data["struggles"]["points"]


def _name(p: dict) -> str:
  return f"{_LABELS[p['model']]} ({fm.kparams(p['params'])})"


def _acc(p: dict, factor, wrong=False) -> str:
  r = p["by_factor"][str(factor)]
  return f"{r['score']:.3f}" + (f" ({r['errors']:,} wrong)" if wrong else "")


def by_length(sources, options, doc):
  """Seed 0: accuracy at every length factor on parity and flip-flop, with the wrong count at the
  longest."""
  (path, data), = sources
  st = data["struggles"]
  factors, tasks = st["factors"], list(st["lengths"])
  header = ["model (params)"]
  for task in tasks:
    header += [f"{task.replace('_', '-')} T={st['lengths'][task]}"] + [
        str(st["lengths"][task] * f) for f in factors[1:]]
  rows = []
  for model in dict.fromkeys(p["model"] for p in _points(data)):
    ps = {p["task"]: p for p in _points(data) if p["model"] == model and p["seed"] == 0}
    row = [_name(ps[tasks[0]])]
    for task in tasks:
      row += [_acc(ps[task], f, wrong=f == factors[-1]) for f in factors]
    rows.append(row)
  return fm.table(header, rows)


def _seeds_cell(ps: list, factor) -> str:
  rs = [p["by_factor"][str(factor)] for p in ps]
  scores = [r["score"] for r in rs]
  scored = fm.seqs(rs[0]["scored"])
  if len(set(scores)) == 1:
    errs = {r["errors"] for r in rs}
    each = f" ({rs[0]['errors']:,} of {scored} wrong on each seed)" if len(errs) == 1 else ""
    return f"{scores[0]:.4f} ± 0{each}"
  return (f"{np.mean(scores):.4f} ± {np.std(scores, ddof=1):.4f} ("
          + ", ".join(f"{s:.4f}" for s in scores) + ": "
          + ", ".join(f"{r['errors']:,}" for r in rs) + f" of {scored} wrong)")


def seeds(sources, options, doc):
  """Mean ± std (ddof=1) over seeds at 1x and the longest factor, every seed's value and wrong
  count."""
  (path, data), = sources
  factors = data["struggles"]["factors"]
  rows = []
  for task in data["struggles"]["lengths"]:
    for model in dict.fromkeys(p["model"] for p in _points(data)):
      ps = sorted((p for p in _points(data) if p["task"] == task and p["model"] == model),
                  key=lambda p: p["seed"])
      rows.append([f"{task.replace('_', '-')}, {_LABELS[model]}"]
                  + [_seeds_cell(ps, f) for f in (factors[0], factors[-1])])
  return fm.table(["", f"{factors[0]}x", f"{factors[-1]}x"], rows)


def mqar(sources, options, doc):
  """Accuracy (wrong queries) per model and number of pairs, beside the state or KV cache it
  carries; the best per column in bold; 1/P and 1/values as references."""
  (path, data), = sources
  mq = data["struggles"]["mqar"]
  pts, pairs = mq["points"], mq["pairs"]
  best = {P: max(p["score"] for p in pts if p["num_pairs"] == P) for P in pairs}
  rows = []
  for model in dict.fromkeys(p["model"] for p in pts):
    ps = {p["num_pairs"]: p for p in pts if p["model"] == model}
    st = next(iter(ps.values()))["state"]
    kind = "state" if st["kind"] == "state" else "KV cache"
    cells = []
    for P in pairs:
      text = f"{ps[P]['score']:.3f} ({ps[P]['errors']:,} wrong)"
      cells.append(f"**{text}**" if ps[P]["score"] == best[P] else text)
    rows.append([_LABELS[model], f"{kind} {st['bytes']:,} B"] + cells)
  rows.append(["1/P", ""] + [f"{1 / P:.4g}" for P in pairs])
  values = int(options["values"])
  rows.append([f"chance over the {values} values", ""] + [f"{1 / values:.4f}" for _ in pairs])
  return fm.table(["model", "state / KV cache"] + [f"P={P}" for P in pairs], rows)


def summary(sources, options, doc):
  """README: seed 0 at 1x and the longest factor on parity and flip-flop, MQAR per P; the
  seeds recording's means (second source) in brackets where it has the model."""
  (path, data), (_, seeded) = sources
  st, factors = data["struggles"], data["struggles"]["factors"]
  tasks, pairs = list(st["lengths"]), st["mqar"]["pairs"]
  header = ["model (params)"]
  for task in tasks:
    name = task.replace("_", "-")
    header += [f"{name}, T={st['lengths'][task]}", f"{name}, {factors[-1]}x"]
  header += [f"MQAR P={P}" for P in pairs]
  rows = []
  for model in dict.fromkeys(p["model"] for p in _points(data)):
    ps = {p["task"]: p for p in _points(data) if p["model"] == model and p["seed"] == 0}
    row = [_name(ps[tasks[0]])]
    for task in tasks:
      many = [p for p in _points(seeded) if p["model"] == model and p["task"] == task]
      for f in (factors[0], factors[-1]):
        text = _acc(ps[task], f)
        if many:
          text += f" ({np.mean([p['by_factor'][str(f)]['score'] for p in many]):.3f})"
        row.append(text)
    mq = {p["num_pairs"]: p for p in st["mqar"]["points"] if p["model"] == model}
    row += [f"{mq[P]['score']:.3f}" for P in pairs]
    rows.append(row)
  return fm.table(header, rows)
