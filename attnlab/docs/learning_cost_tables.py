"""Renderers of learning-cost tables: training sequences to solve against T, per model.

Sources are comparison results.json files (`learning_cost.points`); where several are given, a
later source's point replaces an earlier one's for the same model and T (its cell then carries a
footnote naming its file), so a rerun or a later recording shows as such. Points may carry the
Kaplan-Meier fields of later recordings (`median_sequences`, `median_ci95`); those are used when
present, the plain `median` otherwise.
"""
import os

from attnlab.docs import formats as fm


def _points(data, path: str) -> list:
  """The learning-cost points of one source: a comparison's results.json, or the list of
  transformer_schedule (each entry one schedule at one T; only the Transformer's recipe's peak
  rate 3e-3 is a point of the grid)."""
  if isinstance(data, list):
    return [dict(e, task="adding", model="transformer", length=e["T"], status="trained")
            for e in data if e.get("schedule") == "rsqrt" and e.get("peak_lr") == 0.003]
  if "learning_cost" not in data:
    raise ValueError(f"{path}: no learning_cost section")
  return data["learning_cost"]["points"]


def _usable(options: dict, n_sources: int) -> dict:
  """use=0:*,1:200 -> {0: None (all lengths), 1: {200}}; default every length of every source."""
  use = {k: None for k in range(n_sources)}
  if "use" in options:
    use = {}
    for item in options["use"].split(","):
      k, _, lengths = item.partition(":")
      use[int(k)] = None if lengths in ("", "*") else {int(t) for t in lengths.split("+")}
  return use


def merged(sources: list, options: dict) -> dict:
  """{(model, T): (source index, point)} over the sources, later ones winning for trained points."""
  task = options.get("task", "adding")
  use = _usable(options, len(sources))
  out = {}
  for k, (path, data) in enumerate(sources):
    if k not in use:
      continue
    for p in _points(data, path):
      if p["task"] != task or (use[k] is not None and p["length"] not in use[k]):
        continue
      key = (p["model"], p["length"])
      if key not in out or p["status"] == "trained":
        out[key] = (k, p)
  return out


def median(p: dict):
  """The point's median sequences to solve (None when censored)."""
  if p.get("median_censored"):
    return None
  return p.get("median_sequences", p.get("median"))


def _ci(p: dict) -> str:
  """' [500, >73,984]': the median's 95% interval where the recording has one (None: unbounded)."""
  ci = p.get("median_ci95")
  if not ci:
    return ""
  lo = "?" if ci[0] is None else fm.seqs(ci[0])
  hi = f">{fm.seqs(p['cap_sequences'])}" if ci[1] is None else fm.seqs(ci[1])
  return f" [{lo}, {hi}]"


def _seed(s: dict, cap) -> str:
  return f">{fm.seqs(cap)}" if s["censored"] else fm.seqs(s["solved_sequences"])


def cell(p: dict, style: str, first_skip: bool) -> str:
  """One point: 'seeds' -> '9,344 (9,344, 8,512, 11,264)'; 'median' -> '61,312 (2/3 seeds)';
  censored -> '>73,984 (all 3)'; a point skipped after a censored one -> 'not trained' the first
  time, empty after."""
  if p is None:
    return "not run"
  if p["status"] != "trained":
    return "not trained" if first_skip else ""
  cap, seeds = p["cap_sequences"], p["seeds"]
  solved = sum(not s["censored"] for s in seeds)
  m = median(p)
  if m is None:
    head = f">{fm.seqs(cap)}"
    if solved == 0:
      return head + f" (all {len(seeds)})"
  else:
    head = fm.seqs(m) + _ci(p)
  if style == "seeds":
    return head + " (" + ", ".join(_seed(s, cap) for s in seeds) + ")"
  return head + (f" ({solved}/{len(seeds)} seeds)" if solved < len(seeds) else "")


def exponent(points: dict, model: str, sources=None) -> tuple:
  """(exponent, first T, last T) over the model's uncensored medians, from the given sources."""
  xs = sorted((t, median(p)) for (m, t), (k, p) in points.items()
              if m == model and p["status"] == "trained" and median(p) is not None
              and (sources is None or k in sources))
  if len(xs) < 2:
    return None, None, None
  return fm.growth_exponent([t for t, _ in xs], [v for _, v in xs]), xs[0][0], xs[-1][0]


def footnotes(sources: list, used: set, doc: str) -> list:
  """'[k] path' lines for the sources other than the first whose cells are in the table."""
  lines = []
  for k in sorted(used - {0}):
    path = sources[k][0]
    rel = os.path.relpath(os.path.dirname(path), os.path.dirname(doc) or ".")
    name = "" if path.endswith("results.json") else f" ({os.path.basename(path)})"
    lines.append(f"[{k}] {rel}{name}")
  return ["", "; ".join(lines)] if lines else []


def _models(options: dict, points: dict) -> list:
  if "models" in options:
    return options["models"].split(",")
  return list(dict.fromkeys(m for m, _ in points))


def _header(model: str, points: dict, sources: list, first: int) -> str:
  params = next((p.get("params") for (m, _), (_, p) in points.items()
                 if m == model and p.get("params")), None)
  extra = "" if first == 0 else "; " + os.path.basename(os.path.dirname(sources[first][0]))
  return fm.label(model) + (f" ({fm.kparams(params)}{extra})" if params else "")


def _exp_cell(points, model, span, sources=None) -> str:
  e, a, b = exponent(points, model, sources)
  if e is None:
    return "—"
  return f"{e:.2f}" + ("" if (a, b) == span else f" (T={a}-{b})")


def _wrong(points: dict, model: str) -> str:
  """'7-41' over the model's seeds at every T; censored seeds of solved points apart."""
  seeds = [s for (m, _), (_, p) in points.items() if m == model and p["status"] == "trained"
           for s in p["seeds"]]
  solved = ([s["final_wrong"] for s in seeds if not s["censored"]]
            or [s["final_wrong"] for s in seeds])
  text = f"{min(solved):,}-{max(solved):,}"
  censored = [s["final_wrong"] for s in seeds if s["censored"]]
  if censored and len(censored) < len(seeds):
    plural = "s" * (len(censored) > 1)
    text += f" ({', '.join(f'{w:,}' for w in censored)} on the censored seed{plural})"
  return text


def by_model(sources: list, options: dict, doc: str) -> list:
  """Rows: models; columns: T, then the growth exponent (over the points of `exp=k+k`, default
  all). Options: task, models, lengths, style (seeds|median), use, exp, hs (a Hochreiter &
  Schmidhuber row on adding), corner (the first header cell, '_' for spaces)."""
  points = merged(sources, options)
  models = _models(options, points)
  lengths = sorted({t for _, t in points}) if "lengths" not in options else \
      [int(t) for t in options["lengths"].split(",")]
  exp_sources = None if "exp" not in options else {int(k) for k in options["exp"].split("+")}
  spans = [exponent(points, m, exp_sources)[1:] for m in models]
  span = max(set(spans) - {(None, None)}, key=spans.count, default=(None, None))
  used, rows = set(), []
  for m in models:
    row, skipped = [_header(m, points, sources, 0)], False
    for t in lengths:
      k, p = points.get((m, t), (0, None))
      first_skip = p is not None and p["status"] != "trained" and not skipped
      skipped = skipped or (p is not None and p["status"] != "trained")
      text = cell(p, options.get("style", "median"), first_skip)
      if p is None and skipped:
        text = ""
      if p is not None and k and p["status"] == "trained":
        used.add(k)
        text += f" [{k}]"
      row.append(text if p is not None else "")
    rows.append(row + [_exp_cell(points, m, span, exp_sources)]
                + ([_wrong(points, m)] if options.get("wrong") == "yes" else []))
  if options.get("hs") == "yes":
    hs = fm.hochreiter_adding()
    ts = sorted(hs)
    e = fm.growth_exponent(ts, [hs[t][0] for t in ts])
    rows.append(["LSTM, Hochreiter & Schmidhuber 1997"]
                + [fm.seqs(hs[t][0]) if t in hs else "" for t in lengths]
                + [f"{e:.2f} (T={ts[0]}-{ts[-1]})"])
  corner = options.get("corner", "model_(params)").replace("_", " ")
  exp_head = "growth exponent" + (f" (T={span[0]}-{span[1]})" if span[0] else "")
  wrong_head = []
  if options.get("wrong") == "yes":
    n = next(p["seeds"][0]["final_sequences"] for _, p in points.values()
             if p["status"] == "trained")
    wrong_head = [f"wrong of {fm.seqs(n)}"]
  return (fm.table([corner] + [f"T={t}" for t in lengths] + [exp_head] + wrong_head, rows)
          + footnotes(sources, used, doc))


def by_length(sources: list, options: dict, doc: str) -> list:
  """Rows: T (and a growth-exponent row); columns: models, each from the source that holds it
  (models=gru,1:lstm takes lstm from the second source). Options: task, models, style, hs."""
  columns = []
  for item in options["models"].split(","):
    k, _, m = item.rpartition(":")
    columns.append((int(k or 0), m))
  per_source = [merged([s], {"task": options.get("task", "adding")}) for s in sources]
  lengths = sorted({t for k, m in columns for (mm, t) in per_source[k] if mm == m})
  spans = [exponent(per_source[k], m)[1:] for k, m in columns]
  span = max(set(spans) - {(None, None)}, key=spans.count, default=(None, None))
  hs = fm.hochreiter_adding() if options.get("hs") == "yes" else {}
  rows = []
  for t in lengths:
    row = [str(t)]
    for k, m in columns:
      p = per_source[k].get((m, t), (0, None))[1]
      earlier = [tt for (mm, tt) in per_source[k] if mm == m and tt < t]
      first_skip = p is not None and not any(per_source[k][(m, tt)][1]["status"] != "trained"
                                             for tt in earlier)
      row.append(cell(p, options.get("style", "median"), first_skip))
    rows.append(row + ([fm.seqs(hs[t][0]) if t in hs else ""] if hs else []))
  exp_row = [f"growth exponent (T={span[0]}-{span[1]})" if span[0] else "growth exponent"]
  exp_row += [_exp_cell(per_source[k], m, span) for k, m in columns]
  if hs:
    ts = sorted(hs)
    exp_row.append(f"{fm.growth_exponent(ts, [hs[t][0] for t in ts]):.2f} (T={ts[0]}-{ts[-1]})")
  header = ["T"] + [_header(m, per_source[k], sources, k) for k, m in columns]
  header += ["LSTM, Hochreiter & Schmidhuber 1997"] if hs else []
  return fm.table(header, rows + [exp_row])
