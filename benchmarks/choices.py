"""Choices by backend, by measurement: how the linear recurrence runs, and how seeds are trained.

  scan   the LRU's full training step at its comparison size on adding (batch 64) with
         `model.scan='associative'` against 'sequential', at several T
         -> `attnlab.ops.scan.SCAN_BY_BACKEND`
  seeds  K seeds of one config as one training step, vmapped or looped (lax.map, one seed after
         another inside the program), against K single-seed steps one after another, for each
         comparison model at T=25 and 100 -> `attnlab.train.config.SEED_LOOP`
  attention  the Transformer's full training step at its comparison size on adding with
         `model.attention_impl` 'plain' (weights materialised), 'chunked' (online softmax) and
         'fused' (jax.nn.dot_product_attention), at several T
         -> `attnlab.models.attention.ATTENTION_BY_BACKEND`; 'chunked' also with all (batch, head)
         pairs in each chunk step ('chunked_all_pairs') against blocks of pairs sized to the
         backend's cache budget -> `attnlab.models.attention.PAIR_BLOCK_BYTES_BY_BACKEND`
  microbatches  a model's full training step at its comparison size on adding (batch 64) in k
         microbatches (`config.microbatches`: 1 = one pass) for several k, beside what
         config.microbatches=0 picks, at several T -> `attnlab.train.config.MICROBATCH_BYTES`
All interleave the candidates (`timing.interleaved`) and report the median step; a ratio > 1
means the first-named candidate is slower.
"""
from unittest import mock

import jax

from attnlab.models import attention as attention_lib
from attnlab.train import config as cfg_lib
from attnlab.train import steps, vmap_seeds
from . import research, timing

PARTS = ("scan", "seeds", "attention", "microbatches")


def scan(lengths=(100, 500, 1000), batch: int = 64, repeats: int = 3, log=print) -> dict:
  rows = []
  for length in lengths:
    cands = {m: research.jax_model("lru", length, batch, **{"model.scan": m})
             for m in ("associative", "sequential")}
    times = timing.interleaved({m: c["train_step"] for m, c in cands.items()}, repeats)
    row = dict(T=length, backend=jax.default_backend(),
               **{f"{m}_s": timing.median(t) for m, t in times.items()},
               **{f"{m}_compile_s": c["compile_s"] for m, c in cands.items()})
    row["associative_over_sequential"] = row["associative_s"] / row["sequential_s"]
    rows.append(row)
    log(f"  lru scan T={length:5d}  associative {1e3 * row['associative_s']:8.1f} ms  sequential "
        f"{1e3 * row['sequential_s']:8.1f} ms  ratio {row['associative_over_sequential']:.2f}")
  return dict(rows=rows, batch=batch)


def _transformer(impl: str, length: int, batch: int) -> dict:
  """research.jax_model of the Transformer with `impl`; 'chunked_all_pairs': 'chunked' compiled
  without the backend's (batch, head) pair blocks."""
  if impl != "chunked_all_pairs":
    return research.jax_model("transformer", length, batch, **{"model.attention_impl": impl})
  # the step is traced and compiled inside jax_model, while no backend lists a pair budget
  with mock.patch.dict(attention_lib.PAIR_BLOCK_BYTES_BY_BACKEND, clear=True):
    return research.jax_model("transformer", length, batch, **{"model.attention_impl": "chunked"})


def attention(lengths=(25, 100, 500), batch: int = 64, repeats: int = 3,
              impls=("plain", "chunked", "chunked_all_pairs", "fused"), log=print) -> dict:
  rows = []
  for length in lengths:
    cands = {m: _transformer(m, length, batch) for m in impls}
    times = timing.interleaved({m: c["train_step"] for m, c in cands.items()}, repeats)
    row = dict(T=length, backend=jax.default_backend(),
               **{f"{m}_s": timing.median(t) for m, t in times.items()})
    row.update({f"plain_over_{m}": row["plain_s"] / row[f"{m}_s"] for m in impls if m != "plain"})
    rows.append(row)
    log(f"  transformer attention T={length:5d}  " + "  ".join(
        f"{m} {1e3 * row[f'{m}_s']:8.1f} ms" for m in impls))
  return dict(rows=rows, batch=batch)


def microbatches(cases=(("transformer", 20), ("transformer", 150), ("transformer", 500),
                        ("transformer", 1000), ("lstm", 100), ("gru", 100)),
                 ks=(1, 2, 4, 8, 16, 32), batch: int = 64, repeats: int = 3, log=print) -> dict:
  """(model, T) cases: the step in each k of `ks` that divides `batch`; 'auto_k' is the k that
  config.microbatches=0 picks there (1 where MICROBATCH_BYTES does not split that model)."""
  rows = []
  for word, length in cases:
    auto = steps.microbatch_count(cfg_lib.microbatches(research._config(word, length, batch)),
                                  batch, length)
    own = [k for k in ks if batch % k == 0]
    cands = {k: research.jax_model(word, length, batch, microbatches=k) for k in own}
    times = timing.interleaved({k: c["train_step"] for k, c in cands.items()}, repeats)
    row = dict(model=word, T=length, auto_k=auto, backend=jax.default_backend(),
               **{f"k{k}_s": timing.median(t) for k, t in times.items()})
    best = min(own, key=lambda k: row[f"k{k}_s"])
    row.update(best_k=best, one_pass_over_best=row["k1_s"] / row[f"k{best}_s"])
    if auto in own:
      row["one_pass_over_auto"] = row["k1_s"] / row[f"k{auto}_s"]
    rows.append(row)
    log(f"  microbatches {word:12s} T={length:5d}  " + "  ".join(
        f"k={k} {1e3 * row[f'k{k}_s']:8.1f} ms" for k in own) + f"  (0 picks k={auto})")
  return dict(rows=rows, batch=batch)


def _seed_candidates(word: str, length: int, batch: int, num_seeds: int):
  """{'sequential', 'vmap', 'map'}: callables that each run one training step of every seed."""
  _, spec, model, tx, schedule, data = research.setup(word, length, batch)
  seeds = list(range(num_seeds))
  single = [{"s": steps.create_state(model, tx, spec, jax.random.PRNGKey(s), data)} for s in seeds]
  fns = [jax.jit(steps.make_train_step(model, tx, spec, schedule, seed=s), donate_argnums=0)
         for s in seeds]
  stacked = {"s": vmap_seeds.init_states(model, tx, spec, seeds, data)}
  vfn = jax.jit(vmap_seeds.make_vmapped_train_step(model, tx, spec, schedule, seeds),
                donate_argnums=0)
  looped = {"s": vmap_seeds.init_states(model, tx, spec, seeds, data)}
  lfn = jax.jit(vmap_seeds.make_vmapped_train_step(model, tx, spec, schedule, seeds, loop=True),
                donate_argnums=0)

  def sequential():
    for holder, fn in zip(single, fns):
      holder["s"], m = fn(holder["s"], data)
      jax.block_until_ready(m["loss"])

  def vmapped():
    stacked["s"], m = vfn(stacked["s"], data)
    jax.block_until_ready(m["loss"])

  def mapped():
    looped["s"], m = lfn(looped["s"], data)
    jax.block_until_ready(m["loss"])

  return {"sequential": sequential, "vmap": vmapped, "map": mapped}


def seeds(words=("rnn", "lstm", "gru", "lru", "transformer"), lengths=(25, 100), batch: int = 64,
          num_seeds: int = 3, repeats: int = 3, log=print) -> dict:
  rows = []
  for length in lengths:
    for word in words:
      times = timing.interleaved(_seed_candidates(word, length, batch, num_seeds), repeats)
      row = dict(model=word, T=length, num_seeds=num_seeds, backend=jax.default_backend(),
                 **{f"{k}_s": timing.median(v) for k, v in times.items()})
      row["vmap_over_sequential"] = row["vmap_s"] / row["sequential_s"]
      row["vmap_over_map"] = row["vmap_s"] / row["map_s"]
      rows.append(row)
      log(f"  seeds {word:12s} T={length}  {num_seeds} seeds: vmapped {1e3 * row['vmap_s']:8.1f} ms  "
          f"looped {1e3 * row['map_s']:8.1f} ms  one by one {1e3 * row['sequential_s']:8.1f} ms  "
          f"vmap/loop {row['vmap_over_map']:.2f}")
  return dict(rows=rows, batch=batch)


def run(scan_lengths=(100, 500, 1000), seed_words=("rnn", "lstm", "gru", "lru", "transformer"),
        seed_lengths=(25, 100), num_seeds: int = 3, batch: int = 64, repeats: int = 3,
        attention_lengths=(25, 100, 500),
        attention_impls=("plain", "chunked", "chunked_all_pairs", "fused"),
        microbatch_cases=(("transformer", 20), ("transformer", 150), ("transformer", 500),
                          ("transformer", 1000), ("lstm", 100), ("gru", 100)),
        microbatch_ks=(1, 2, 4, 8, 16, 32), parts=PARTS, log=print) -> dict:
  """{part: rows} for each of `parts` (a subset of PARTS)."""
  run_part = dict(scan=lambda: scan(scan_lengths, batch, repeats, log),
                  seeds=lambda: seeds(seed_words, seed_lengths, batch, num_seeds, repeats, log),
                  attention=lambda: attention(attention_lengths, batch, repeats, attention_impls,
                                              log),
                  microbatches=lambda: microbatches(microbatch_cases, microbatch_ks, batch, repeats,
                                                    log))
  return {part: run_part[part]() for part in parts}
