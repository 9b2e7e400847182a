"""The timed layers, ours and their peers, built on shared weights.

Each `*_layers(shape, dtype)` returns {name: Layer}: attnlab's module, Flax's built-in and (if
importable) PyTorch's CPU module, all holding the same weights, so they compute the same function:
  lstm         attnlab models.LSTM (ops.lstm: custom VJP), ops.lstm_scan (plain lax.scan and
               autodiff), flax nn.RNN(nn.OptimizedLSTMCell), torch.nn.LSTM
  gru          attnlab models.GRU(reset_after=True), flax nn.RNN(nn.GRUCell), torch.nn.GRU
  transformer  attnlab models.EncoderBlock (post-LN, ReLU; plain / chunked / fused attention), the
               same layer built from flax nn.MultiHeadDotProductAttention, torch.nn.TransformerEncoderLayer
A Layer holds `forward(x) -> y` for a float input (B,T,D) and `train_step()`: forward, mean(y^2) as
the loss, backward and one Adam step (lr 1e-3) on a fixed input, blocking until done. Each PyTorch
module appears twice, with all cores and with one thread (see `_torch_layers`).
"""
import dataclasses
from copy import deepcopy
import os
import time
from typing import Any, Callable, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from attnlab import models, ops

try:
  import torch
except ImportError:  # the [bench] extra is not installed: no PyTorch peers
  torch = None


@dataclasses.dataclass
class Layer:
  forward: Callable  # x (B,T,D) NumPy -> y NumPy
  train_step: Callable[[], None]
  framework: str  # 'jax' | 'torch'
  compile: Optional[Callable[[], float]] = None  # compiles the train step, returns seconds
  extra: Any = None


def torch_available() -> bool:
  return torch is not None


# ------------------------------------------------------------------------------------ jax side


def _jax_layer(module, variables, x, dtype, apply_kw=None) -> Layer:
  """A Layer for a Flax module whose apply returns y or (y, ...)."""
  apply_kw = apply_kw or {}

  def out(params, x):
    y = module.apply({"params": jax.tree.map(lambda a: a.astype(dtype), params)}, x.astype(dtype),
                     **apply_kw)
    return (y[0] if isinstance(y, tuple) else y).astype(jnp.float32)

  tx = optax.adam(1e-3)

  def step(params, opt_state, x):
    loss, grads = jax.value_and_grad(lambda p: jnp.mean(out(p, x) ** 2))(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss

  params = variables["params"]
  own = jax.tree.map(jnp.array, params)  # a copy: the train step donates its buffers
  state = {"params": own, "opt": tx.init(own), "fn": jax.jit(step, donate_argnums=(0, 1))}
  x = jnp.asarray(x)

  def compile_step():
    start = time.perf_counter()
    state["fn"] = jax.jit(step, donate_argnums=(0, 1)).lower(state["params"], state["opt"],
                                                            x).compile()
    return time.perf_counter() - start

  def train_step():
    state["params"], state["opt"], loss = state["fn"](state["params"], state["opt"], x)
    jax.block_until_ready(loss)

  forward = jax.jit(out)
  return Layer(lambda x_: np.asarray(forward(params, jnp.asarray(x_))), train_step, "jax",
               compile_step)


def random_input(shape, seed=0) -> np.ndarray:
  return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def _flax_lstm_params(cell: dict) -> dict:
  """Our fused LSTM cell {W_x, W_h, b} -> nn.OptimizedLSTMCell's per-gate kernels."""
  w_x, w_h, b = (np.split(np.asarray(cell[k]), 4, axis=-1) for k in ("W_x", "W_h", "b"))
  out = {}
  for j, g in enumerate("ifgo"):
    out["i" + g] = {"kernel": w_x[j]}
    out["h" + g] = {"kernel": w_h[j], "bias": b[j]}
  return out


def _flax_gru_params(cell: dict) -> dict:
  """Our GRU cell (reset_after) {W_x, W_h, b_x, b_h} -> nn.GRUCell's kernels; needs b_h[:2H] = 0."""
  w_x, w_h, b_x, b_h = (np.split(np.asarray(cell[k]), 3, axis=-1)
                        for k in ("W_x", "W_h", "b_x", "b_h"))
  out = {"i" + g: {"kernel": w_x[j], "bias": b_x[j]} for j, g in enumerate("rzn")}
  out.update({"hr": {"kernel": w_h[0]}, "hz": {"kernel": w_h[1]},
              "hn": {"kernel": w_h[2], "bias": b_h[2]}})
  return out


class FlaxEncoderLayer(nn.Module):
  """A post-LN encoder layer from Flax built-ins (nn.MultiHeadDotProductAttention); our param names."""
  num_heads: int
  d_ff: int

  @nn.compact
  def __call__(self, x):
    attn = nn.MultiHeadDotProductAttention(self.num_heads, name="self_attention")
    x = nn.LayerNorm(name="ln_attention")(x + attn(x))
    y = _FlaxMLP(self.d_ff, name="mlp")(x)
    return nn.LayerNorm(name="ln_mlp")(x + y)


class _FlaxMLP(nn.Module):
  d_ff: int

  @nn.compact
  def __call__(self, x):
    y = nn.relu(nn.Dense(self.d_ff)(x))
    return nn.Dense(x.shape[-1])(y)


# ---------------------------------------------------------------------------------- torch side


def _torch_layers(name: str, module, x: np.ndarray, output: Callable) -> dict:
  """The module timed with every core and with one thread: torch's OpenMP threads busy-wait, so on
  a machine that other jobs share, one thread can be much faster; the report takes the faster.
  Where JAX runs on a GPU and torch sees CUDA, the peer is the module on the GPU instead, in float32
  (TF32 matrix units allowed, as JAX's default precision allows them) and in bfloat16."""
  if jax.default_backend() == "gpu" and torch.cuda.is_available():
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    layers = {}
    for dtype in (torch.float32, torch.bfloat16):
      tag = "f32" if dtype == torch.float32 else "bf16"
      copy = deepcopy(module).to(device="cuda", dtype=dtype)
      layer = _torch_layer(copy, x, output, threads=None, device="cuda", dtype=dtype)
      try:
        layer.train_step()
      except RuntimeError as e:  # e.g. a cuDNN RNN without a bfloat16 kernel
        print(f"  torch {name} cuda {tag}: skipped ({str(e).splitlines()[0][:100]})")
        continue
      layers[f"{name} (cuda {tag})"] = layer
    return layers
  cores = os.cpu_count() or 1
  threads = [cores, 1] if cores > 1 else [1]
  return {f"{name} ({n} thread{'s' if n > 1 else ''})": _torch_layer(module, x, output, n)
          for n in threads}


def _torch_layer(module, x: np.ndarray, output: Callable, threads: Optional[int],
                 device: str = "cpu", dtype=None) -> Layer:
  module.train()
  opt = torch.optim.Adam(module.parameters(), lr=1e-3)
  dtype = dtype or torch.float32
  xt = torch.from_numpy(x).to(device=device, dtype=dtype)
  sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

  def train_step():
    if threads:
      torch.set_num_threads(threads)
    opt.zero_grad(set_to_none=True)
    loss = output(module(xt)).float().pow(2).mean()
    loss.backward()
    opt.step()
    sync()

  def forward(x_):
    with torch.no_grad():
      xin = torch.from_numpy(np.asarray(x_, np.float32)).to(device=device, dtype=dtype)
      return output(module(xin)).float().cpu().numpy()

  return Layer(forward, train_step, "torch", extra=dict(threads=threads, device=device,
                                                         dtype=str(dtype).replace("torch.", "")))


def _t(a) -> "torch.Tensor":
  return torch.from_numpy(np.array(a, np.float32))


def _torch_rnn(kind: str, cell: dict, d_in: int, hidden: int):
  """torch.nn.LSTM / GRU holding our cell's weights (gate orders i,f,g,o and r,z,n match torch's)."""
  module = (torch.nn.LSTM if kind == "lstm" else torch.nn.GRU)(d_in, hidden, batch_first=True)
  with torch.no_grad():
    module.weight_ih_l0.copy_(_t(np.asarray(cell["W_x"]).T))
    module.weight_hh_l0.copy_(_t(np.asarray(cell["W_h"]).T))
    if kind == "lstm":
      module.bias_ih_l0.copy_(_t(cell["b"]))
      module.bias_hh_l0.zero_()
    else:
      module.bias_ih_l0.copy_(_t(cell["b_x"]))
      module.bias_hh_l0.copy_(_t(cell["b_h"]))
  return module


def _torch_encoder(params: dict, d_model: int, num_heads: int, d_ff: int):
  """torch.nn.TransformerEncoderLayer (post-LN, ReLU, no dropout) holding our EncoderBlock's weights."""
  module = torch.nn.TransformerEncoderLayer(d_model, num_heads, d_ff, dropout=0.0, batch_first=True,
                                            layer_norm_eps=1e-6)
  attn = params["self_attention"]
  flat = lambda name: np.asarray(attn[name]["kernel"]).reshape(d_model, d_model).T
  with torch.no_grad():
    module.self_attn.in_proj_weight.copy_(_t(np.concatenate([flat(n) for n in ("query", "key", "value")])))
    module.self_attn.in_proj_bias.copy_(_t(np.concatenate(
        [np.asarray(attn[n]["bias"]).reshape(-1) for n in ("query", "key", "value")])))
    module.self_attn.out_proj.weight.copy_(_t(np.asarray(attn["out"]["kernel"]).reshape(d_model, d_model).T))
    module.self_attn.out_proj.bias.copy_(_t(attn["out"]["bias"]))
    for torch_name, ours in (("linear1", "Dense_0"), ("linear2", "Dense_1")):
      getattr(module, torch_name).weight.copy_(_t(np.asarray(params["mlp"][ours]["kernel"]).T))
      getattr(module, torch_name).bias.copy_(_t(params["mlp"][ours]["bias"]))
    for torch_name, ours in (("norm1", "ln_attention"), ("norm2", "ln_mlp")):
      getattr(module, torch_name).weight.copy_(_t(params[ours]["scale"]))
      getattr(module, torch_name).bias.copy_(_t(params[ours]["bias"]))
  return module


# ------------------------------------------------------------------------------------ builders


def lstm_layers(batch, length, d_in, hidden, dtype=jnp.float32, torch_peers=True) -> dict:
  x = random_input((batch, length, d_in))
  ours = models.LSTM(hidden_size=hidden)
  variables = ours.init(jax.random.PRNGKey(0), jnp.asarray(x[:1, :2]))
  cell = variables["params"]["layer_0_fwd"]["cell"]
  layers = {"attnlab LSTM": _jax_layer(ours, variables, x, dtype)}
  layers["attnlab lstm_scan"] = _jax_layer(_ScanLSTM(hidden), {"params": {"cell": dict(cell)}}, x,
                                           dtype)
  flax_rnn = nn.RNN(nn.OptimizedLSTMCell(hidden))
  layers["flax OptimizedLSTMCell"] = _jax_layer(
      flax_rnn, {"params": {"cell": _flax_lstm_params(cell)}}, x, dtype)
  if torch_peers and torch is not None:
    layers.update(_torch_layers("torch nn.LSTM", _torch_rnn("lstm", cell, d_in, hidden), x,
                                lambda y: y[0]))
  return layers


class _ScanLSTM(nn.Module):
  """ops.lstm_scan (the plain lax.scan, differentiated by JAX) with models.LSTM's parameters."""
  hidden: int

  @nn.compact
  def __call__(self, x):
    cell = models.CellParameters("lstm", x.shape[-1], self.hidden, name="cell")()
    return ops.lstm_scan(cell, x)[0]


def gru_layers(batch, length, d_in, hidden, dtype=jnp.float32, torch_peers=True) -> dict:
  x = random_input((batch, length, d_in))
  ours = models.GRU(hidden_size=hidden, reset_after=True)
  variables = ours.init(jax.random.PRNGKey(0), jnp.asarray(x[:1, :2]))
  cell = dict(variables["params"]["layer_0_fwd"]["cell"])
  rng = np.random.default_rng(1)  # non-zero biases, with b_h[:2H] = 0 as nn.GRUCell has it
  cell["b_x"] = jnp.asarray(0.1 * rng.standard_normal(cell["b_x"].shape), jnp.float32)
  cell["b_h"] = jnp.zeros_like(cell["b_h"]).at[2 * hidden:].set(0.1)
  variables = {"params": {"layer_0_fwd": {"cell": cell}}}
  layers = {"attnlab GRU": _jax_layer(ours, variables, x, dtype)}
  layers["flax GRUCell"] = _jax_layer(nn.RNN(nn.GRUCell(hidden)),
                                      {"params": {"cell": _flax_gru_params(cell)}}, x, dtype)
  if torch_peers and torch is not None:
    layers.update(_torch_layers("torch nn.GRU", _torch_rnn("gru", cell, d_in, hidden), x,
                                lambda y: y[0]))
  return layers


def transformer_layers(batch, length, d_model, num_heads, d_ff, dtype=jnp.float32,
                       impls=("plain", "chunked", "fused"), torch_peers=True) -> dict:
  x = random_input((batch, length, d_model))
  block = lambda impl: models.EncoderBlock(num_heads, d_ff, attention_impl=impl)
  variables = block("plain").init(jax.random.PRNGKey(0), jnp.asarray(x[:1, :4]))
  layers = {f"attnlab EncoderBlock ({impl})": _jax_layer(block(impl), variables, x, dtype)
            for impl in impls}
  layers["flax MultiHeadDotProductAttention"] = _jax_layer(FlaxEncoderLayer(num_heads, d_ff),
                                                           variables, x, dtype)
  if torch_peers and torch is not None:
    module = _torch_encoder(variables["params"], d_model, num_heads, d_ff)
    layers.update(_torch_layers("torch nn.TransformerEncoderLayer", module, x, lambda y: y))
  return layers
