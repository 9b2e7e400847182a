"""sLSTM (xLSTM, Beck et al. 2024): exponential gating with a normaliser and a stabiliser state.

Shapes: batch B, time T, input D, hidden H = heads N x head size d. Params: W_x (D,4H), R (4,N,d,d),
b (4H,), gate blocks in the order i, f, z, o. The recurrent weights are block-diagonal: head n of
gate g sees only head n of h_{t-1} through R[g, n] (d,d).

  [i~ f~ z~ o~] = x_t W_x + blockdiag(R)(h_{t-1}) + b
  z_t = tanh(z~),  o_t = sigmoid(o~),  log i_t = i~  (exponential input gate),
  log f_t = f~ (forget='exp') or log sigmoid(f~) (forget='sigmoid')
  m_t  = max(log f_t + m_{t-1}, log i_t)           the stabiliser (m_t = log i_t while n_{t-1} = 0,
                                                   the empty initial state, as in the reference code)
  i'_t = exp(log i_t - m_t),  f'_t = exp(log f_t + m_{t-1} - m_t)
  c_t  = f'_t * c_{t-1} + i'_t * z_t                the cell
  n_t  = f'_t * n_{t-1} + i'_t                      the normaliser
  h_t  = o_t * c_t / n_t

c_t and n_t are the paper's unstabilised c, n times exp(-m_t), so h_t is the same as without the
stabiliser while nothing overflows. The state is (h, c, n, m), each (B,H), zeros by default. With
`lengths`, steps t >= length leave the state unchanged and give zero outputs; `reverse=True` runs
each sequence backwards over its own valid steps.
"""
from typing import Optional, Tuple

import jax
import jax.numpy as jnp

from attnlab.ops.recurrent import _check_sequence, _scan_over_time

Array = jax.Array
State = Tuple[Array, Array, Array, Array]
FORGET_GATES = ("sigmoid", "exp")


def _check_forget(forget):
  if forget not in FORGET_GATES:
    raise ValueError(f"slstm: forget={forget!r}; valid choices: {list(FORGET_GATES)}")


def _slstm_update(r: Array, state: State, xw: Array, forget: str) -> State:
  """One step given the input projection xw = x W_x + b (B,4H)."""
  h, c, n, m = state
  heads, d = r.shape[1], r.shape[2]
  rh = jnp.einsum("bnd,gnde->bgne", h.reshape(h.shape[0], heads, d), r).reshape(xw.shape)
  i_raw, f_raw, z_raw, o_raw = jnp.split(xw + rh, 4, axis=-1)
  log_f = f_raw if forget == "exp" else -jax.nn.softplus(-f_raw)
  stay = jnp.where(n == 0, i_raw, log_f + m)  # an empty state (n = 0) keeps nothing: m = log i
  m_new = jnp.maximum(stay, i_raw)
  i = jnp.exp(i_raw - m_new)
  f = jnp.exp(stay - m_new)
  c = f * c + i * jnp.tanh(z_raw)
  n = f * n + i
  return jax.nn.sigmoid(o_raw) * c / n, c, n, m_new


def slstm_cell(params: dict, state: State, x: Array, forget: str = "sigmoid") -> State:
  """One sLSTM step. state (h, c, n, m) each (B,H), x (B,D) -> the next state."""
  _check_forget(forget)
  return _slstm_update(params["R"], state, x @ params["W_x"] + params["b"], forget)


def slstm(params: dict, x: Array, state0: Optional[State] = None, *, lengths=None,
          reverse: bool = False, forget: str = "sigmoid", unroll: int = 1) -> Tuple[Array, State]:
  """sLSTM over a sequence. x (B,T,D), state0 (h, c, n, m) -> (hs (B,T,H), final state)."""
  _check_forget(forget)
  _check_sequence(x, params["W_x"].shape[0], "slstm")
  r = params["R"]
  xw = x @ params["W_x"] + params["b"]
  if state0 is None:
    state0 = (jnp.zeros((x.shape[0], xw.shape[-1] // 4), xw.dtype),) * 4

  def step(state, xw_t):
    state = _slstm_update(r, state, xw_t, forget)
    return state, state[0]

  return _scan_over_time(step, tuple(state0), xw, lengths, reverse, unroll)
