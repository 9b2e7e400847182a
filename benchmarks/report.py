"""The targets of the performance issue, checked against a results dict, and the tables printed.

`targets(results)` gives one row per target: what was measured, the bar, and met / not met (or
'not run'). `ratio_rows(results)` gives attnlab's throughput over each peer's, per layer section.
`markdown(results)` renders both, with the machine and versions, for BENCHMARKS.md.
"""
from typing import List, Optional

OURS = {"lstm": "attnlab LSTM", "gru": "attnlab GRU"}
SHAPES = {
    "lstm": "LSTM B={B} T={T} D={D} H={H}",
    "gru": "GRU B={B} T={T} D={D} H={H}",
    "transformer": "encoder layer B={B} T={T} d={d} heads={heads} d_ff={d_ff}",
}


def best_ours(section: dict, name: str) -> Optional[str]:
  """Our fastest layer of a section (the transformer has one per attention_impl)."""
  if name in OURS:
    return OURS[name] if OURS[name] in section["rows"] else None
  ours = [n for n in section["rows"] if n.startswith("attnlab")]
  return min(ours, key=lambda n: section["rows"][n]["step_s"]) if ours else None


def ratio_rows(results: dict) -> List[dict]:
  rows = []
  for name in ("lstm", "gru", "transformer"):
    section = results.get(name)
    if not section:
      continue
    ours = best_ours(section, name)
    for peer, row in section["rows"].items():
      if peer.startswith("attnlab") and peer != "attnlab lstm_scan":
        continue
      rows.append(dict(section=name, shape=SHAPES[name].format(**section["shape"]), ours=ours,
                       peer=peer, ours_tokens_per_s=section["rows"][ours]["tokens_per_s"],
                       peer_tokens_per_s=row["tokens_per_s"],
                       ratio=section["rows"][peer]["step_s"] / section["rows"][ours]["step_s"]))
  return rows


def _ratio(results, section, peer_prefix):
  """Our ratio over the fastest peer whose name starts with `peer_prefix` (e.g. torch, any threads)."""
  rows = [r for r in ratio_rows(results)
          if r["section"] == section and r["peer"].startswith(peer_prefix)]
  if not rows:
    return None, None
  best = min(rows, key=lambda r: r["ratio"])
  return best["ratio"], f"{best['ours']} vs {best['peer']}"


def targets(results: dict) -> List[dict]:
  out = []

  def add(name, measured, bar, ok, note=""):
    out.append(dict(target=name, measured=measured, bar=bar,
                    status="not run" if ok is None else ("met" if ok else "not met"), note=note))

  for section, peer, bar in (("lstm", "torch", 1.5), ("lstm", "flax", 1.2),
                             ("transformer", "torch", 1.3)):
    ratio, ours = _ratio(results, section, peer)
    add(f"{section} vs {peer} throughput", None if ratio is None else f"{ratio:.2f}x, {ours}",
        f">= {bar}x", None if ratio is None else ratio >= bar)
  for section, bar in (("lstm", 0.60), ("transformer", 0.50)):
    sec = results.get(section)
    if sec:
      ours = best_ours(sec, section)
      mfu = sec["rows"][ours]["mfu"]
      add(f"{section} MFU", f"{100 * mfu:.0f}% ({ours})", f">= {100 * bar:.0f}%", mfu >= bar)
    else:
      add(f"{section} MFU", None, f">= {100 * bar:.0f}%", None)
  for row in (results.get("research") or {}).get("rows", []):
    bar = 1.3 if row["model"] == "transformer" else 1.5
    if "ratio" in row:
      add(f"research size: {row['model']} T={row['T']} vs {row['fastest_torch']}",
          f"{row['ratio']:.2f}x", f">= {bar}x", row["ratio"] >= bar)
  for row in (results.get("recurrences") or {}).get("rows", []):
    if row["T"] >= 1000:
      for cell in ("min_gru", "min_lstm"):
        methods = [m for m in ("sequential", "parallel", "blocked") if f"lstm_over_{cell}_{m}" in row]
        best = max(methods, key=lambda m: row[f"lstm_over_{cell}_{m}"])
        ratio = row[f"lstm_over_{cell}_{best}"]
        add(f"{cell} layer vs LSTM T={row['T']} H={row['hidden']}", f"{ratio:.2f}x ({best})", ">= 3x",
            ratio >= 3)
  long = results.get("long")
  if long:
    points = long["points"]
    longest = max(p["T"] for p in points if p["model"] == "transformer")
    chunked = [p for p in points if p.get("impl") == "chunked" and p["T"] == longest]
    ok = bool(chunked) and chunked[0]["status"] == "ok"
    mem = f", peak RSS {chunked[0]['peak_rss_bytes'] / 2**30:.2f} GiB" if ok else ""
    add(f"transformer train step at T={longest}, chunked attention",
        (chunked[0]["status"] if chunked else "missing") + mem, "runs", ok)
    lru = [p for p in points if p["model"] == "lru"]
    if lru:
      ok = lru[0]["status"] == "ok"
      mem = f", peak RSS {lru[0]['peak_rss_bytes'] / 2**30:.2f} GiB" if ok else ""
      add(f"LRU train step at T={lru[0]['T']}", lru[0]["status"] + mem, "runs", ok)
  else:
    add("long sequences", None, "runs", None)
  sweep = results.get("vmap")
  e2e = (sweep or {}).get("end_to_end")
  add(f"vmap over {sweep['num_seeds'] if sweep else 8} seeds vs sequential",
      (f"{sweep['ratio']:.2f}x steps only" + (f"; {e2e['ratio']:.2f}x end to end ({e2e['steps']} "
                                                "steps, through the trainer)" if e2e else ""))
      if sweep else None, ">= 4x", None if not sweep else sweep["ratio"] >= 4)
  comp = results.get("compile")
  rows = [r for r in (comp or {}).get("rows", []) if "compile_s" in r]
  if rows:
    worst = max(rows, key=lambda r: r["compile_s"])
    add("first-step compile, every shipped config", f"max {worst['compile_s']:.2f} s ({worst['config']})",
        "< 5 s", worst["compile_s"] < 5.0)
    cached = [r["cached_compile_s"] for r in rows if r.get("cached_compile_s") is not None]
    if cached:
      add("persistent compilation cache", f"max {max(cached):.2f} s when cached", "enabled, faster",
          max(cached) < worst["compile_s"])
    pipe = [r for r in rows if "pipeline" in r]
    if pipe:
      for key, label in (("pipeline", "loader read directly"), ("prefetched", "data.prefetch")):
        worst = max(pipe, key=lambda r: r[key]["wait_fraction"])
        add(f"input pipeline wait ({label})",
            f"max {100 * worst[key]['wait_fraction']:.1f}% ({worst['config']})", "< 5%",
            worst[key]["wait_fraction"] < 0.05)
  else:
    add("first-step compile, every shipped config", None, "< 5 s", None)
  return out


def print_tables(results: dict, log=print):
  log("\nthroughput ratios (attnlab over peer; > 1 means attnlab is faster):")
  for row in ratio_rows(results):
    log(f"  {row['shape']:50s} {row['ours']:30s} vs {row['peer']:34s} {row['ratio']:5.2f}x")
  log("\ntargets:")
  for t in targets(results):
    log(f"  {t['target']:52s} {str(t['measured']):52s} {t['bar']:16s} {t['status']}")


def _table(header, rows) -> str:
  lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
  return "\n".join(lines)


def markdown(results: dict) -> str:
  m = results["machine"]
  parts = [f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']:.0f} GiB; device "
           f"{m['device']}; load average at start {m['load_average']}.",
           "Versions: " + ", ".join(f"{k} {v}" for k, v in results["versions"].items()) + ".",
           f"Command: `{results['command']}`; f32 matmul peak measured in the run: "
           f"{results['peak']['gflops']:.0f} GFLOP/s (n={results['peak']['n']}).", ""]
  parts.append(_table(["layer", "attnlab", "peer", "attnlab tok/s", "peer tok/s", "ratio"],
                      [(r["shape"], r["ours"], r["peer"], f"{r['ours_tokens_per_s']:,.0f}",
                        f"{r['peer_tokens_per_s']:,.0f}", f"{r['ratio']:.2f}x")
                       for r in ratio_rows(results)]))
  parts += ["", _table(["target", "measured", "bar", "status"],
                       [(t["target"], t["measured"], t["bar"], t["status"]) for t in targets(results)])]
  for name in ("lstm", "gru", "transformer"):
    sec = results.get(name)
    if not sec:
      continue
    rows = []
    for layer, r in sec["rows"].items():
      mem = r.get("memory", {})
      rows.append((layer, f"{1e3 * r['step_s']:.1f}", f"{r['tokens_per_s']:,.0f}",
                   f"{100 * r['mfu']:.0f}%", f"{100 * r['spread']:.0f}%",
                   "-" if r["compile_s"] is None else f"{r['compile_s']:.2f}",
                   f"{mem['peak_rss_bytes'] / 2**20:,.0f}" if mem.get("peak_rss_bytes") else "-",
                   f"{mem['step_rss_rise_bytes'] / 2**20:,.0f}" if mem.get("peak_rss_bytes") else "-"))
    parts += ["", f"{SHAPES[name].format(**sec['shape'])}, {sec['dtype']}, "
              f"{sec['train_flops'] / 1e9:.1f} GFLOP per step:", "",
              _table(["layer", "step ms", "tokens/s", "MFU", "spread", "compile s",
                      "peak RSS MiB", "RSS rise MiB"], rows)]
  long = results.get("long")
  if long:
    rows = [(p["model"], p.get("impl", "-"), p["T"], p["status"],
             "-" if p.get("step_s") is None else f"{p['step_s']:.2f}",
             "-" if p.get("compile_s") is None else f"{p['compile_s']:.1f}",
             f"{p['peak_rss_bytes'] / 2**30:.2f}",
             "-" if p.get("step_rss_rise_bytes") is None else f"{p['step_rss_rise_bytes'] / 2**30:.2f}")
            for p in long["points"]]
    parts += ["", "Long sequences (B=1, one child process each, memory cap "
              f"{long['mem_cap_bytes'] / 2**30:.1f} GiB):", "",
              _table(["model", "attention", "T", "status", "step s", "compile s", "peak RSS GiB",
                      "RSS rise GiB"], rows)]
  res = results.get("research")
  if res:
    names = sorted({n for r in res["rows"] for n, v in r.items() if isinstance(v, dict)},
                   key=lambda n: (n != "attnlab", n))
    rows = [[r["model"], r["T"], f"{r['attnlab']['n_params']:,}"]
            + [f"{1e3 * r[n]['step_s']:.1f}" if n in r else "-" for n in names]
            + [f"{r['ratio']:.2f}x" if "ratio" in r else "-",
               f"{r['attnlab']['forward_s'] / r['attnlab']['step_s']:.0%} / "
               f"{r['attnlab']['forward_backward_s'] / r['attnlab']['step_s']:.0%}"]
            for r in res["rows"]]
    parts += ["", f"Research sizes: one full training step (ms) on adding, batch {res['batch']}; "
              "ratio = fastest PyTorch variant over attnlab (> 1: attnlab faster); the last column "
              "is attnlab's forward and forward+backward time as shares of its step.", "",
              _table(["model", "T", "params"] + [f"{n} ms" for n in names]
                     + ["ratio", "fwd / fwd+bwd"], rows)]
  rec = results.get("recurrences")
  if rec:
    from . import recurrences  # jax; the rest of this module is plain Python
    parts += ["", "One recurrent layer at one hidden size, forward + backward (median; in brackets the "
              "LSTM's time over it, > 1: faster than the LSTM):", "", recurrences.markdown(rec)]
  ch = results.get("choices")
  if ch:
    parts += ["", "Choices by backend (median step; ratio > 1: the first-named is slower):"]
  if ch and ch.get("scan"):
    parts += ["", _table(["LRU training step", "associative ms", "sequential ms", "assoc / seq"],
                         [(f"T={r['T']}", f"{1e3 * r['associative_s']:.1f}",
                           f"{1e3 * r['sequential_s']:.1f}", f"{r['associative_over_sequential']:.2f}")
                          for r in ch["scan"]["rows"]])]
  if ch and ch.get("seeds"):
    parts += ["", _table(["seeds", "T", "vmapped ms", "looped ms", "one by one ms", "vmap / loop",
                          "vmap / one by one"],
                         [(f"{r['num_seeds']} x {r['model']}", r["T"], f"{1e3 * r['vmap_s']:.1f}",
                           f"{1e3 * r['map_s']:.1f}" if "map_s" in r else "-",
                           f"{1e3 * r['sequential_s']:.1f}",
                           f"{r['vmap_over_map']:.2f}" if "vmap_over_map" in r else "-",
                           f"{r['vmap_over_sequential']:.2f}") for r in ch["seeds"]["rows"]])]
  if ch and ch.get("attention"):
    impls = [k[:-2] for k in ch["attention"]["rows"][0] if k.endswith("_s")]
    parts += ["", _table(["Transformer training step", *[f"{m} ms" for m in impls],
                          *[f"plain / {m}" for m in impls if m != "plain"]],
                         [(f"T={r['T']}", *[f"{1e3 * r[f'{m}_s']:.1f}" for m in impls],
                           *[f"{r[f'plain_over_{m}']:.2f}" for m in impls if m != "plain"])
                          for r in ch["attention"]["rows"]])]
  if ch and ch.get("microbatches"):
    rows = ch["microbatches"]["rows"]
    ks = sorted({int(k[1:-2]) for r in rows for k in r if k.startswith("k") and k.endswith("_s")})
    parts += ["", _table(["training step in k microbatches", *[f"k={k} ms" for k in ks],
                          "0 picks", "one pass / best"],
                         [(f"{r['model']} T={r['T']}",
                           *[f"{1e3 * r[f'k{k}_s']:.1f}" if f"k{k}_s" in r else "-" for k in ks],
                           f"k={r['auto_k']}", f"{r['one_pass_over_best']:.2f} (k={r['best_k']})")
                          for r in rows])]
  comp = results.get("compile")
  if comp:
    pct = lambda r, k: f"{100 * r[k]['wait_fraction']:.1f}%" if k in r else "-"
    rows = [(r["config"], r.get("error") or f"{r['compile_s']:.2f}",
             "-" if r.get("cached_compile_s") is None else f"{r['cached_compile_s']:.2f}",
             pct(r, "pipeline"), pct(r, "prefetched"),
             f"{1e3 * r['prefetched']['step_s'] / r['prefetched']['steps']:.1f}"
             if "prefetched" in r else "-")
            for r in comp["rows"]]
    parts += ["", "Shipped configs: train-step compile (cold / from the persistent cache) and the "
              "input pipeline's share of step time (loader read directly / through data.prefetch):",
              "", _table(["config", "compile s", "cached s", "data wait", "prefetched", "step ms"],
                         rows)]
  sweep = results.get("vmap")
  if sweep:
    parts += ["", f"Seed sweep: {sweep['num_seeds']} seeds x {sweep['steps']} steps of an LSTM "
              f"(H={sweep['hidden']}, T={sweep['length']}, batch {sweep['batch']}): vmapped "
              f"{sweep['vmapped_s']:.2f} s, sequential {sweep['sequential_s']:.2f} s, "
              f"ratio {sweep['ratio']:.2f}x."]
    e2e = sweep.get("end_to_end")
    if e2e:
      parts += [f"End to end, {e2e['num_seeds']} runs x {e2e['steps']} steps through the trainer "
                f"(compile, evaluations, checkpoints): one by one {e2e['sequential_s']:.1f} s, "
                f"`train_seeds` {e2e['vmapped_s']:.1f} s, ratio {e2e['ratio']:.2f}x."]
  return "\n".join(parts) + "\n"
