"""Recurrences at one hidden size: the LSTM layer against minGRU and minLSTM (Feng et al. 2024).

One layer each, input and hidden size H, on (B, T, H) float32 inputs; timed is one training step's
share of the layer: forward and backward (gradients of sum(outputs * cotangent) with respect to the
weights and the inputs), jitted.
  lstm             `ops.lstm` (the LSTM the models run: a fused [x_t, h] product per step and
                   a hand-written backward pass, `ops.lstm_vjp`)
  min_gru/min_lstm `ops.min_gru` / `ops.min_lstm`: gates from x_t alone, so the loop holds only
                   h_t = a_t h_{t-1} + b_t; method 'sequential' (a scan), 'parallel' (Heinsen's
                   log-space form through a cumulative sum) and 'blocked' (blocks of 64 steps,
                   hand-written backward: `ops.min_rnn_blocked`)
Issue 13's bar: each min* at least 3x faster per step than the LSTM at T=1000 on 2 CPU cores.
Beside them, Mamba's S6 (`ops.selective_scan`, B=64, E=128, N=16, forward + backward with respect to
every input) in its three forms: 'sequential', 'parallel' and 'blocked' (what `scan='auto'` picks on
CPU).
Candidates are interleaved (`timing.interleaved`); `lstm_over_<name>` > 1 means the min* is faster.
Each method is timed in a group of its own with the LSTM (`GROUPS`; each ratio uses the LSTM of its
group): the sequential and parallel forms write (B, T, kH) arrays, 0.6-1 GB of fresh pages a call,
and slowed whichever program ran next on this 2-core VM, at the same page-fault count (T=1000:
minLSTM blocked 225 ms after the LSTM, 333 ms right after minLSTM sequential; the LSTM 526 -> 641 ms).
"""
import jax
import jax.numpy as jnp
import numpy as np

from attnlab import ops
from . import timing

CELLS = ("min_gru", "min_lstm")
GATES = {"min_gru": 2, "min_lstm": 3}


def _params(rng, hidden: int, gates: int, recurrent: bool) -> dict:
  scale = 1 / np.sqrt(hidden)
  p = {"W_x": rng.normal(0, scale, (hidden, gates * hidden)), "b": np.zeros(gates * hidden)}
  if recurrent:
    p["W_h"] = rng.normal(0, scale, (hidden, gates * hidden))
  return jax.tree.map(lambda a: jnp.asarray(a, jnp.float32), p)


GROUPS = (("blocked",), ("sequential",), ("parallel",))


def candidates(length: int, batch: int, hidden: int,
               methods=("sequential", "parallel", "blocked")) -> dict:
  """{name: blocking callable running forward + backward once}: the LSTM and each min* method."""
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.normal(size=(batch, length, hidden)), jnp.float32)
  cot = jnp.asarray(rng.normal(size=(batch, length, hidden)), jnp.float32)

  def lstm_loss(p, x):
    return jnp.sum(ops.lstm(p, x)[0] * cot)

  fns = {"lstm": (jax.jit(jax.grad(lstm_loss, argnums=(0, 1))), _params(rng, hidden, 4, True))}
  for cell in CELLS:
    for method in methods:
      op = getattr(ops, cell)

      def loss(p, x, op=op, method=method):
        return jnp.sum(op(p, x, method=method)[0] * cot)
      fns[f"{cell}_{method}"] = (jax.jit(jax.grad(loss, argnums=(0, 1))),
                                 _params(rng, hidden, GATES[cell], False))
  return {name: (lambda f=f, p=p: jax.block_until_ready(f(p, x))) for name, (f, p) in fns.items()}


S6_METHODS = ("sequential", "parallel", "blocked")


def s6_candidates(length: int, batch: int, channels: int = 128, state: int = 16) -> dict:
  """{S6 method: blocking callable running its forward + backward once}."""
  rng = np.random.default_rng(0)
  f32 = lambda a: jnp.asarray(a, jnp.float32)
  args = (f32(rng.normal(size=(batch, length, channels))),
          f32(np.exp(rng.uniform(-4, -1, (batch, length, channels)))),  # Delta in Mamba's range
          f32(-np.exp(rng.uniform(-1, 1, (channels, state)))), f32(rng.normal(size=(batch, length, state))),
          f32(rng.normal(size=(batch, length, state))), f32(rng.normal(size=channels)))
  cot = f32(rng.normal(size=(batch, length, channels)))
  fns = {}
  for method in S6_METHODS:
    loss = lambda *a, method=method: jnp.sum(ops.selective_scan(*a, method=method)[0] * cot)
    grad = jax.jit(jax.grad(loss, argnums=tuple(range(len(args)))))
    fns[method] = lambda grad=grad: jax.block_until_ready(grad(*args))
  return fns


def run_s6(lengths, batch: int, repeats: int, log=print) -> list:
  rows = []
  for length in lengths:
    times = timing.interleaved(s6_candidates(length, batch), repeats)
    row = dict(T=length, batch=batch, channels=128, state=16,
               **{f"s6_{m}_s": timing.median(t) for m, t in times.items()})
    rows.append(row)
    log(f"  S6 T={length:5d} B={batch} E=128 N=16  " + "  ".join(
        f"{m} {1e3 * row[f's6_{m}_s']:7.1f} ms" for m in S6_METHODS))
  return rows


def run(lengths=(1000,), batch: int = 64, hidden: int = 128, repeats: int = 5, log=print,
        s6_lengths=(144,)) -> dict:
  rows = []
  for length in lengths:
    row = dict(T=length, batch=batch, hidden=hidden, backend=jax.default_backend())
    times = {}
    for k, methods in enumerate(GROUPS):
      group = timing.interleaved(candidates(length, batch, hidden, methods), repeats)
      lstm = group.pop("lstm")
      if k == 0:
        times["lstm"] = lstm
      else:
        row[f"lstm_with_{'_'.join(methods)}_s"] = timing.median(lstm)
      for name, t in group.items():
        times[name] = t
        row[f"lstm_over_{name}"] = timing.median(lstm) / timing.median(t)
    row.update({f"{n}_s": timing.median(t) for n, t in times.items()})
    row.update({f"{n}_spread": timing.spread(t) for n, t in times.items()})
    rows.append(row)
    log(f"  T={length:5d} B={batch} H={hidden}  lstm {1e3 * row['lstm_s']:8.1f} ms  " + "  ".join(
        f"{n} {1e3 * row[f'{n}_s']:7.1f} ms ({row[f'lstm_over_{n}']:.1f}x)" for n in times if n != "lstm"))
  return dict(rows=rows, s6=run_s6(s6_lengths, batch, repeats, log))


def markdown(section: dict) -> str:
  names = [k[len("lstm_over_"):] for k in section["rows"][0] if k.startswith("lstm_over_")]
  lines = ["| T | B | H | LSTM fwd+bwd | " + " | ".join(names) + " |",
           "|---|---|---|---|" + "---|" * len(names)]
  for r in section["rows"]:
    lines.append(f"| {r['T']} | {r['batch']} | {r['hidden']} | {1e3 * r['lstm_s']:.1f} ms | " + " | ".join(
        f"{1e3 * r[f'{n}_s']:.1f} ms ({r[f'lstm_over_{n}']:.1f}x)" for n in names) + " |")
  if section.get("s6"):
    lines += ["", "| S6 T | B | E | N | " + " | ".join(S6_METHODS) + " |", "|---|---|---|---|" + "---|" * 3]
    lines += [f"| {r['T']} | {r['batch']} | {r['channels']} | {r['state']} | " + " | ".join(
        f"{1e3 * r[f's6_{m}_s']:.1f} ms" for m in S6_METHODS) + " |" for r in section["s6"]]
  return "\n".join(lines)
