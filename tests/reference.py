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


# ------------------------------------------------------------------ modern recurrences (issue 13)
# Written to work on complex arrays as well (branches compare real parts), so `complex_step_grad`
# differentiates them to rounding error.


def _steps(length, reverse):
  return range(length - 1, -1, -1) if reverse else range(length)


def causal_conv1d(x, w, b):
  """x (B,T,E), w (K,E), b (E,): y_t = sum_k w_k x_{t-K+1+k} + b."""
  k = w.shape[0]
  y = np.zeros(x.shape, np.result_type(x, w, b))
  for t in range(x.shape[1]):
    y[:, t] = b
    for j in range(k):
      if t - k + 1 + j >= 0:
        y[:, t] += w[j] * x[:, t - k + 1 + j]
  return y


def selective_scan(u, delta, a, b_in, c, d, h0=None, lengths=None, reverse=False):
  """S6 step by step: h = exp(delta A) h + delta u B, y = C . h + D u. Returns y (B,T,E), h (B,E,N)."""
  batch, length, e = u.shape
  dtype = np.result_type(u, delta, a, b_in, c, d, *(() if h0 is None else (h0,)))
  y = np.zeros(u.shape, dtype)
  h_final = np.zeros((batch,) + a.shape, dtype)
  for i in range(batch):
    h = np.zeros(a.shape, dtype) if h0 is None else h0[i].astype(dtype)
    for t in _steps(length if lengths is None else lengths[i], reverse):
      h = np.exp(delta[i, t][:, None] * a) * h + (delta[i, t] * u[i, t])[:, None] * b_in[i, t][None]
      y[i, t] = h @ c[i, t] + d * u[i, t]
    h_final[i] = h
  return y, h_final


def g(v):
  """minGRU / minLSTM's activation: v + 1/2 for v >= 0, sigmoid(v) below."""
  return np.where(np.real(v) >= 0, v + 0.5, sigmoid(v))


def min_rnn(cell, p, x, h0=None, lengths=None, reverse=False):
  """minGRU (blocks z, h) or minLSTM (blocks f, i, h) step by step. Returns hs (B,T,H), h (B,H)."""
  xw = x @ p["W_x"] + p["b"]
  batch, length = x.shape[:2]
  hidden = xw.shape[-1] // (2 if cell == "min_gru" else 3)
  dtype = xw.dtype if h0 is None else np.result_type(xw, h0)
  hs = np.zeros((batch, length, hidden), dtype)
  h_final = np.zeros((batch, hidden), dtype)
  for i in range(batch):
    h = np.zeros(hidden, dtype) if h0 is None else h0[i].astype(dtype)
    for t in _steps(length if lengths is None else lengths[i], reverse):
      blocks = [xw[i, t, k * hidden:(k + 1) * hidden] for k in range(xw.shape[-1] // hidden)]
      if cell == "min_gru":
        z = sigmoid(blocks[0])
        h = (1 - z) * h + z * g(blocks[1])
      else:
        f, inp = sigmoid(blocks[0]), sigmoid(blocks[1])
        h = f / (f + inp) * h + inp / (f + inp) * g(blocks[2])
      hs[i, t] = h
    h_final[i] = h
  return hs, h_final


def _slstm_preactivations(p, h, x):
  """x W_x + blockdiag(R) h + b, gate blocks i, f, z, o, each (B,H)."""
  r = p["R"]
  heads, d = r.shape[1], r.shape[2]
  hidden = heads * d
  pre = (x @ p["W_x"] + p["b"]).astype(np.result_type(x, h, r, p["W_x"], p["b"]))
  for gate in range(4):
    for n in range(heads):
      cols = slice(gate * hidden + n * d, gate * hidden + (n + 1) * d)
      pre[:, cols] = pre[:, cols] + h[:, n * d:(n + 1) * d] @ r[gate, n]
  return [pre[:, k * hidden:(k + 1) * hidden] for k in range(4)]


def slstm_cell(p, state, x, forget="sigmoid"):
  """Stabilised sLSTM step (Beck et al. 2024, eqs. of the sLSTM with stabiliser m)."""
  h, c, n, m = state
  i_raw, f_raw, z_raw, o_raw = _slstm_preactivations(p, h, x)
  log_f = f_raw if forget == "exp" else -np.log(1 + np.exp(-f_raw))
  stay = np.where(np.real(n) == 0, i_raw, log_f + m)  # the empty state: m = log i
  m_new = np.where(np.real(stay) >= np.real(i_raw), stay, i_raw)
  i = np.exp(i_raw - m_new)
  f = np.exp(stay - m_new)
  c = f * c + i * np.tanh(z_raw)
  n = f * n + i
  return sigmoid(o_raw) * c / n, c, n, m_new


def slstm_raw_cell(p, state, x, forget="sigmoid"):
  """The same step without the stabiliser: i = exp(i~), f = sigmoid(f~) or exp(f~); state (h, c, n)."""
  h, c, n = state
  i_raw, f_raw, z_raw, o_raw = _slstm_preactivations(p, h, x)
  f = np.exp(f_raw) if forget == "exp" else sigmoid(f_raw)
  c = f * c + np.exp(i_raw) * np.tanh(z_raw)
  n = f * n + np.exp(i_raw)
  return sigmoid(o_raw) * c / n, c, n


def slstm(p, x, state0=None, lengths=None, reverse=False, forget="sigmoid"):
  """sLSTM over each sequence's valid steps. Returns hs (B,T,H) and the final (h, c, n, m)."""
  batch, length = x.shape[:2]
  hidden = p["W_x"].shape[1] // 4
  dtype = np.result_type(x, *p.values(), *(() if state0 is None else state0))
  hs = np.zeros((batch, length, hidden), dtype)
  final = [np.zeros((batch, hidden), dtype) for _ in range(4)]
  if state0 is None:
    state0 = (np.zeros((batch, hidden)),) * 4
  for i in range(batch):
    state = tuple(s[i:i + 1].astype(dtype) for s in state0)
    for t in _steps(length if lengths is None else lengths[i], reverse):
      state = slstm_cell(p, state, x[i:i + 1, t], forget)
      hs[i, t] = state[0][0]
    for k in range(4):
      final[k][i] = state[k][0]
  return hs, tuple(final)


def complex_step_grad(fn, args, wrt, step=1e-30):
  """d fn(*args) / d args[wrt] for a real scalar fn, by the complex step Im fn(x + i step e_k) / step.

  No subtraction, so the derivative is exact to rounding (not O(eps) like finite differences).
  """
  x = np.asarray(args[wrt], np.float64)
  grad = np.zeros_like(x)
  for idx in np.ndindex(x.shape):
    perturbed = x.astype(complex)
    perturbed[idx] += 1j * step
    grad[idx] = np.imag(fn(*args[:wrt], perturbed, *args[wrt + 1:])) / step
  return grad


# ------------------------------------------------------------------- ablations (issue 26)


def layer_norm(x, eps=1e-6):
  """LayerNorm over the last axis with scale 1 and bias 0 (Flax's init; Flax's epsilon)."""
  mean = x.mean(axis=-1, keepdims=True)
  var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
  return (x - mean) / np.sqrt(var + eps)


def self_attention_mask(length, lengths=None, causal=False, window=None):
  """(B or 1,1,T,T) bool from the definitions: key j < lengths[b], j <= i, |i - j| <= window."""
  i, j = np.arange(length)[:, None], np.arange(length)[None, :]
  mask = np.ones((length, length), bool)
  if causal:
    mask &= j <= i
  if window is not None:
    mask &= np.abs(i - j) <= window
  mask = mask[None, None]
  if lengths is not None:
    mask = mask & (np.arange(length)[None, :] < np.asarray(lengths)[:, None])[:, None, None, :]
  return mask


def uniform_attention(v, mask):
  """v (B,T,N,d), mask (B,1,T,T) -> the explicit uniform weights mask / row count applied to v."""
  count = mask.sum(axis=-1, keepdims=True)
  weights = np.where(mask, 1.0 / np.maximum(count, 1), 0.0)
  weights = np.broadcast_to(weights, (v.shape[0], v.shape[2]) + mask.shape[2:])
  return np.einsum("bnqk,bknd->bqnd", weights, v)


# ------------------------------------------------------------------- Mamba's wiring (issue 28)


def silu(x):
  return x * sigmoid(x)


def softplus(x):
  return np.log1p(np.exp(x))


def rms_norm(x, scale, eps=1e-6):
  """x / sqrt(mean(x^2) + eps) * scale over the last axis (Flax's RMSNorm and its epsilon)."""
  return x / np.sqrt((x**2).mean(axis=-1, keepdims=True) + eps) * scale


def mamba_mixer(p, u, lengths=None):
  """One Mamba mixer (Gu & Dao 2023, the reference's mamba_simple.Mamba) from its equations, with
  p the Flax parameter tree of `MambaMixer` (kernels (in, out)). u (B,T,d) -> (B,T,d)."""
  x, z = np.split(u @ p["in_proj"]["kernel"], 2, axis=-1)  # (B,T,E) each
  x = silu(causal_conv1d(x, p["conv_kernel"], p["conv_bias"]))
  n = p["A_log"].shape[1]
  rank = p["x_proj"]["kernel"].shape[1] - 2 * n
  proj = x @ p["x_proj"]["kernel"]
  dt, b_in, c = proj[..., :rank], proj[..., rank:rank + n], proj[..., rank + n:]
  delta = softplus(dt @ p["dt_proj"]["kernel"] + p["dt_proj"]["bias"])
  y, _ = selective_scan(x, delta, -np.exp(p["A_log"]), b_in, c, p["D"], lengths=lengths)
  return (y * silu(z)) @ p["out_proj"]["kernel"]


def mamba_stack(p, x, lengths=None):
  """`MambaStack`: input projection, pre-norm residual blocks u + mixer(RMSNorm(u)), final RMSNorm.
  Returns hs (B,T,d) and hs at each sequence's last valid step (B,d)."""
  u = x @ p["input_proj"]["kernel"] + p["input_proj"]["bias"]
  layer = 0
  while f"block_{layer}" in p:
    u = u + mamba_mixer(p[f"block_{layer}"], rms_norm(u, p[f"norm_{layer}"]["scale"]), lengths)
    layer += 1
  hs = rms_norm(u, p["final_norm"]["scale"])
  last = np.full(x.shape[0], x.shape[1]) if lengths is None else np.asarray(lengths)
  return hs, hs[np.arange(x.shape[0]), last - 1]
