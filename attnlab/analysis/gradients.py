"""Gradient flow through time: how much the loss at the end feels the input at step t.

  input_gradient_norms(model, params, batch, spec)   ||dL/dx_t|| for t = 0..T-1   (any model)
  state_jacobian_norms(cell, params, x)              ||dh_T/dh_t|| and the singular values of the
                                                     step Jacobians dh_{t+1}/dh_t   (RNN, LSTM, GRU,
                                                     minGRU, minLSTM, sLSTM)
  fit_decay(norms)                                   decades lost per step of distance, and R^2
  aggregate_fits(fits, seeds)                        mean and std (ddof=1) of the fits over seeds

L is the loss of the model's output at the last step (per-sequence tasks: their one output), so
dL/dx_t measures how far back a signal reaches. Everything runs in float64 (`jax.enable_x64`): in
float32 a tanh RNN's gradients underflow to 0 by T = 300. All functions are jit-compiled and use
jax.grad / jax.vjp / jax.jacfwd; they handle T up to thousands.
"""
import functools

import jax
import jax.numpy as jnp
import numpy as np

from attnlab import ops
from attnlab.train import losses


def _to64(tree):
  return jax.tree.map(lambda x: jnp.asarray(x, jnp.float64) if jnp.issubdtype(
      jnp.asarray(x).dtype, jnp.floating) else jnp.asarray(x), tree)


def _last_step_loss(spec, outputs, batch):
  """The task loss of the last output step (all of it for one-output-per-sequence tasks)."""
  if spec.output == "step":
    last = jnp.asarray(batch["lengths"]) - 1
    take = lambda a: jnp.take_along_axis(a, last.reshape((-1,) + (1,) * (a.ndim - 1)), axis=1)[:, 0]
    outputs = take(outputs)
    batch = {"targets": take(batch["targets"]), "mask": jnp.ones(outputs.shape[0])}
  loss, _ = losses.loss_and_metrics(_sequence_spec(spec), outputs, batch)
  return loss * outputs.shape[0]  # a sum over examples, so each row's gradient is its own


def _sequence_spec(spec):
  import dataclasses
  return dataclasses.replace(spec, output="sequence")


_GRAD_FNS = {}


def _input_grad_fn(model, spec):
  """A jitted (params, batch) -> dL/dx, cached per model and task so repeated calls never retrace."""
  key = (id(model), spec.name, spec.kind, spec.output)
  if key not in _GRAD_FNS:

    def grads(params, batch):
      x = model.apply({"params": params}, batch["inputs"], method="embed_inputs")

      def loss(x):
        out = model.apply({"params": params}, x, batch["lengths"], method="from_embeddings")
        return _last_step_loss(spec, out, batch)

      return jax.grad(loss)(x)

    _GRAD_FNS[key] = (model, jax.jit(grads))  # keep the model alive so its id stays unique
  return _GRAD_FNS[key][1]


def input_gradient_norms(model, params, batch, spec, per_example: bool = False) -> np.ndarray:
  """||dL/dx_t|| over the embedded inputs x (B,T,E) of a sequence model, in float64.

  Returns (T,) averaged over the batch (or (B,T) with per_example). Token tasks differentiate with
  respect to the embeddings, real-valued tasks with respect to the inputs the backbone sees.
  """
  with jax.enable_x64(True):
    grads = _input_grad_fn(model, spec)(_to64(params), _to64(dict(batch)))
    norms = np.asarray(jnp.linalg.norm(grads, axis=-1))
  return norms if per_example else norms.mean(axis=0)


CELLS = ("rnn", "lstm", "gru", "mingru", "minlstm", "slstm")


def _state_size(cell: str, params) -> int:
  """S: H, 2H for the LSTM's [h, c], 4H for the sLSTM's [h, c, n, m]."""
  if cell == "rnn":
    return params["W_hh"].shape[0]
  if cell in ("lstm", "gru"):
    return params["W_h"].shape[0] * (2 if cell == "lstm" else 1)
  return params["W_x"].shape[1] // {"mingru": 2, "minlstm": 3, "slstm": 1}[cell]


def _step_fn(cell: str, params, activation="tanh", reset_after=False):
  """state (B,S) x input (B,D) -> state (S as in `_state_size`)."""
  if cell not in CELLS:
    raise ValueError(f"state Jacobians: unknown cell {cell!r}; valid choices: {list(CELLS)}")
  if cell == "rnn":
    return lambda s, x: ops.rnn_cell(params, s, x, activation)
  if cell == "gru":
    return lambda s, x: ops.gru_cell(params, s, x, reset_after)
  if cell in ("mingru", "minlstm"):
    op = ops.min_gru if cell == "mingru" else ops.min_lstm
    return lambda s, x: op(params, x[:, None], s, method="sequential")[1]
  if cell == "slstm":
    return lambda s, x: jnp.concatenate(ops.slstm_cell(params, tuple(jnp.split(s, 4, axis=-1)), x),
                                        axis=-1)
  hidden = params["W_h"].shape[0]

  def lstm_step(s, x):
    h, c = ops.lstm_cell(params, (s[:, :hidden], s[:, hidden:]), x)
    return jnp.concatenate([h, c], axis=-1)

  return lstm_step


@functools.partial(jax.jit, static_argnums=(0, 3, 4))
def _state_jacobians(cell, params, x, activation, reset_after):
  """Step Jacobians J_t = d s_{t+1} / d s_t along the trajectory: (T,B,S,S)."""
  step = _step_fn(cell, params, activation, reset_after)
  s0 = jnp.zeros((x.shape[0], _state_size(cell, params)), x.dtype)

  def body(s, x_t):
    jac = jax.vmap(jax.jacfwd(lambda s1, x1: step(s1[None], x1[None])[0]))(s, x_t)
    return step(s, x_t), jac

  _, jacs = jax.lax.scan(body, s0, jnp.swapaxes(x, 0, 1))
  return jacs


def _spectral_norm(m, iterations: int = 100):
  """Largest singular value of each matrix in m (B,S,S), by power iteration on m^T m (~1e-5 relative)."""
  v = jnp.ones(m.shape[:2], m.dtype) / jnp.sqrt(m.shape[-1])

  def body(_, v):
    w = jnp.einsum("bij,bi->bj", m, jnp.einsum("bij,bj->bi", m, v))
    return w / jnp.maximum(jnp.linalg.norm(w, axis=-1, keepdims=True), 1e-300)

  v = jax.lax.fori_loop(0, iterations, body, v)
  return jnp.linalg.norm(jnp.einsum("bij,bj->bi", m, v), axis=-1)


@jax.jit
def _log10_products(jacs):
  """log10 ||J_{T-1} ... J_{t+1}|| for every t (T,B), renormalising so nothing under- or overflows."""
  t_steps, batch, size, _ = jacs.shape

  def body(carry, jac):
    prod, log_scale = carry
    log10 = log_scale + jnp.log10(_spectral_norm(prod))
    prod = prod @ jac
    scale = jnp.maximum(jnp.abs(prod).max(axis=(1, 2)), 1e-300)
    return (prod / scale[:, None, None], log_scale + jnp.log10(scale)), log10

  eye = jnp.broadcast_to(jnp.eye(size, dtype=jacs.dtype), (batch, size, size))
  # Step t's norm uses the product of the Jacobians after it: scan from the end, J_t applied last.
  _, log10 = jax.lax.scan(body, (eye, jnp.zeros(batch, jacs.dtype)), jacs[::-1])
  return log10[::-1]


def state_jacobian_norms(cell: str, params, x, activation="tanh", reset_after=False,
                         singular_values: bool = True):
  """||dh_T/dh_t||_2 for t = 0..T-1 and the singular values of every step Jacobian, in float64.

  Args:
    cell: one of `CELLS` ('rnn', 'lstm', 'gru', 'mingru', 'minlstm', 'slstm'); params: that
      cell's `ops` params (e.g. a layer's `cell` dict).
    x: inputs (B,T,D) of that layer (for the stacked models: that layer's normalised input).
    singular_values: also return the singular values of each step Jacobian (an SVD per step).
  Returns:
    {'norms': (T,) spectral norm of dh_T/dh_t averaged over the batch (t = T-1: the identity);
     'log10_norms': the same in log10, exact even where the norm underflows float64;
     'singular_values': (T,B,S) of the step Jacobians d h_{t+1}/d h_t}. For the LSTM the state
    is [h, c] (S = 2H), for the sLSTM [h, c, n, m] (S = 4H; from the zero state the first step
    ignores c, n and m, the empty state's convention).
  """
  with jax.enable_x64(True):
    jacs = _state_jacobians(cell, _to64(params), jnp.asarray(x, jnp.float64), activation,
                            reset_after)
    log10 = np.asarray(_log10_products(jacs)).T  # (B,T)
    jacs = np.asarray(jacs)
  out = {"log10_norms": _log10_mean(log10.T)}
  out["norms"] = 10.0**out["log10_norms"]
  if singular_values:
    out["singular_values"] = np.linalg.svd(jacs, compute_uv=False)
  return out


def _log10_mean(log10: np.ndarray) -> np.ndarray:
  """log10 of the mean over axis 1 of 10**log10, without overflow or underflow."""
  top = log10.max(axis=1, keepdims=True)
  return (top + np.log10(np.mean(10.0**(log10 - top), axis=1, keepdims=True)))[:, 0]


def fit_decay(norms=None, *, log10=None) -> dict:
  """Least-squares line through log10(norm) against distance from the end (T-1-t).

  Give `norms` (T,), or `log10` (T,) where norms underflow. Returns {'decades_per_step': -slope
  (positive = vanishing), 'r2': fit quality, 'span_decades': log10(max/min), 'nonzero': how many
  norms were not zero}. Zero norms are left out; when only one is left (a model whose gradient
  reaches no step but the one it reads out, e.g. the Transformer with window=0 and the last-step
  readout) decades_per_step and span_decades are infinite and r2 is NaN.
  """
  if (norms is None) == (log10 is None):
    raise ValueError("fit_decay takes exactly one of norms and log10")
  if log10 is None:
    norms = np.asarray(norms, np.float64)
    with np.errstate(divide="ignore"):
      log10 = np.log10(norms)
  log10 = np.asarray(log10, np.float64)
  distance = np.arange(len(log10))[::-1].astype(np.float64)
  keep = np.isfinite(log10)
  if keep.sum() == 0:
    raise ValueError("fit_decay needs at least one nonzero norm, got none")
  if keep.sum() == 1:
    return {"decades_per_step": float("inf"), "r2": float("nan"), "span_decades": float("inf"),
            "nonzero": 1}
  y, d = log10[keep], distance[keep]
  slope, intercept = np.polyfit(d, y, 1)
  residual = y - (slope * d + intercept)
  total = ((y - y.mean())**2).sum()
  r2 = 1.0 - (residual**2).sum() / total if total > 0 else 1.0
  return {"decades_per_step": float(-slope), "r2": float(r2),
          "span_decades": float(y.max() - y.min()), "nonzero": int(keep.sum())}


@jax.jit
def _forget_gates(params, x):
  """f_t = sigmoid(x_t W_xf + h_{t-1} W_hf + b_f) along the hidden states of `ops.lstm` itself."""
  hs, _ = ops.lstm(params, x)
  h_prev = jnp.concatenate([jnp.zeros_like(hs[:, :1]), hs[:, :-1]], axis=1)  # h_{-1} = 0
  z = x @ params["W_x"] + h_prev @ params["W_h"] + params["b"]
  return jax.nn.sigmoid(jnp.split(z, 4, axis=-1)[1])  # gate order i, f, g, o


def forget_gate_activations(params, x) -> np.ndarray:
  """The LSTM's forget gates f_t = sigmoid(.) (B,T,H) along the run of x (B,T,D) from a zero state."""
  return np.asarray(_forget_gates(params, jnp.asarray(x)))


FIT_KEYS = ("decades_per_step", "r2", "span_decades")


def mean_std(values) -> tuple:
  """Mean and std (ddof=1; None for one value) of the finite values; (inf, None) if none is."""
  finite = [v for v in values if np.isfinite(v)]
  if not finite:
    return float("inf") if any(np.isinf(v) for v in values) else float("nan"), None
  return float(np.mean(finite)), float(np.std(finite, ddof=1)) if len(finite) > 1 else None


def aggregate_fits(fits: list, seeds=None) -> dict:
  """Seeds' `fit_decay` results -> their mean and spread.

  Returns {'decades_per_step', 'r2', 'span_decades': mean over the seeds with a finite value,
  '<key>_std': std (ddof=1) over them (None with fewer than two), 'nonzero': the fewest nonzero
  norms of any seed, 'finite': how many seeds had a finite decay rate, 'count': how many seeds,
  'per_seed': every seed's fit (with its 'seed' when `seeds` is given)}. A decay rate that is
  infinite for every seed (no gradient beyond the read-out step) stays inf.
  """
  if not fits:
    raise ValueError("aggregate_fits needs at least one fit, got none")
  out = {}
  for key in FIT_KEYS:
    out[key], out[f"{key}_std"] = mean_std([float(f[key]) for f in fits])
  out["nonzero"] = min(int(f["nonzero"]) for f in fits)
  out["finite"] = sum(bool(np.isfinite(f["decades_per_step"])) for f in fits)
  out["count"] = len(fits)
  out["per_seed"] = [dict(f, seed=s) for f, s in zip(fits, seeds)] if seeds is not None else list(fits)
  return out


def geometric_mean_curve(curves) -> np.ndarray:
  """The per-step geometric mean of several ||dL/dx_t|| curves (S,T) -> (T,); 0 where any is 0."""
  curves = np.asarray(curves, np.float64)
  with np.errstate(divide="ignore"):
    return np.exp(np.log(curves).mean(axis=0))
