"""Float64 NumPy implementations of the equations, written independently of `attnlab.ops`."""
import numpy as np


def sigmoid(x):
  return 1.0 / (1.0 + np.exp(-x))


def rnn_cell(p, h, x, f=np.tanh):
  return f(x @ p["W_xh"] + h @ p["W_hh"] + p["b_h"])


def lstm_cell(p, carry, x):
  h, c = carry
  hidden = h.shape[-1]
  z = x @ p["W_x"] + h @ p["W_h"] + p["b"]
  i = sigmoid(z[:, :hidden])
  f = sigmoid(z[:, hidden:2 * hidden])
  g = np.tanh(z[:, 2 * hidden:3 * hidden])
  o = sigmoid(z[:, 3 * hidden:])
  c = f * c + i * g
  return o * np.tanh(c), c


def gru_cell(p, h, x, reset_after=False):
  hidden = h.shape[-1]
  blocks = lambda w: (w[..., :hidden], w[..., hidden:2 * hidden], w[..., 2 * hidden:])
  wxr, wxz, wxn = blocks(p["W_x"])
  whr, whz, whn = blocks(p["W_h"])
  bxr, bxz, bxn = blocks(p["b_x"])
  bhr, bhz, bhn = blocks(p["b_h"])
  r = sigmoid(x @ wxr + bxr + h @ whr + bhr)
  z = sigmoid(x @ wxz + bxz + h @ whz + bhz)
  if reset_after:
    n = np.tanh(x @ wxn + bxn + r * (h @ whn + bhn))
  else:
    n = np.tanh(x @ wxn + bxn + (r * h) @ whn + bhn)
  return (1 - z) * n + z * h


def run_cell(cell, p, x, state):
  """Loops `cell` over x (B,T,D); returns the stacked hidden vectors (B,T,H) and the final state."""
  hs = []
  for t in range(x.shape[1]):
    state = cell(p, state, x[:, t])
    hs.append(state[0] if isinstance(state, tuple) else state)
  return np.stack(hs, axis=1), state


def softmax(z, axis=-1):
  z = z - z.max(axis=axis, keepdims=True)
  e = np.exp(z)
  return e / e.sum(axis=axis, keepdims=True)


def attention(q, k, v, mask=None, bias=0.0):
  """q (B,Tq,N,d), k/v (B,Tk,N,d) -> out (B,Tq,N,d), weights (B,N,Tq,Tk)."""
  logits = np.einsum("bqnd,bknd->bnqk", q, k) / np.sqrt(q.shape[-1]) + bias
  if mask is not None:
    mask = np.broadcast_to(mask, logits.shape)
    logits = np.where(mask, logits, -np.inf)
    with np.errstate(invalid="ignore"):
      w = softmax(logits)
    w = np.where(mask, np.nan_to_num(w), 0.0)
  else:
    w = softmax(logits)
  return np.einsum("bnqk,bknd->bqnd", w, v), w


def random_params(rng, shapes, scale=0.5):
  return {k: scale * rng.standard_normal(s) for k, s in shapes.items()}
