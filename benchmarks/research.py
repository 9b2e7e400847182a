"""Research sizes: the full training step of every comparison model against the same model in PyTorch.

What the comparison trains is small models on long sequences, so this section times exactly that:
each model at its comparison size and recipe (configs/common.py, configs/adding.py) on adding
(batch 64, real inputs (B,T,2), last-step readout, MSE), one whole training step -- model, loss,
backward, clipping at 1.0, Adam (AdamW for the LRU) -- through attnlab's own train step
(`attnlab.train.steps.make_train_step`, what the trainer runs), against the equivalent PyTorch
model and loop, eager and (where it compiles on this machine) `torch.compile`d.

  PyTorch equivalents (parameter counts printed beside attnlab's):
    rnn / lstm / gru  torch.nn.RNN(tanh) / LSTM / GRU + Linear on the last step, sharing attnlab's
                      weights where the cells match (torch adds a second bias vector; torch's GRU
                      applies the reset gate after W_h h, attnlab's comparison GRU before it)
    lru               the same LRU blocks written in PyTorch (pre-LN, complex diagonal recurrence by
                      log-depth doubling, GELU, GLU, residual), own initialisation
    transformer       Linear(2, 64) + sinusoidal positions + 2 pre-LN nn.TransformerEncoderLayer
                      (4 heads, d_ff 128, ReLU) + LayerNorm + Linear on the last step
Where the time goes: each model is also timed forward only and forward + backward, so a row says
what share of the step is the forward pass, the backward pass, and the update.
"""
import math
import time

import jax
import numpy as np

from attnlab import models, sweep, tasks
from attnlab.train import config as cfg_lib
from attnlab.train import optim, steps
from . import peers, timing
from attnlab.configs import common

MODELS = ("rnn", "lstm", "gru", "lru", "transformer")
# Untimed sleep before each timed call: PyTorch's OpenMP threads spin after a step and, interleaved
# without it, slowed the next attnlab step by up to 1.6x (Transformer T=100: 122 vs 76 ms).
PAUSE_S = 0.2


def _config(word: str, length: int, batch: int, **overrides):
  config = sweep.load_config_file("configs/adding.py")(f"{word},seq_len={length}")
  config.batch_size = batch
  for key, value in overrides.items():  # dotted fields, e.g. {"model.scan": "sequential"}
    parent, _, leaf = key.rpartition(".")
    (config[parent] if parent else config)[leaf] = value
  return config


def setup(word: str, length: int, batch: int, **overrides):
  """(config, spec, model, tx, schedule, one batch) of `word` at its comparison size on adding."""
  config = _config(word, length, batch, **overrides)
  spec, model_config = cfg_lib.validate(config, 1)
  tx, schedule = optim.make_optimizer(config.optimizer, config.num_train_steps)
  data = tasks.generate(config.task.name, config.batch_size, **cfg_lib.task_params(config))
  data = {k: v for k, v in data.items() if v.dtype != object}
  return config, spec, models.build(model_config), tx, schedule, data


def run_step(config, model, tx, spec, schedule):
  """The training step a run of `config` takes (in microbatches where config.microbatches=0 splits
  its batch), jitted with the state donated."""
  return jax.jit(steps.make_train_step(model, tx, spec, schedule, seed=0,
                                       microbatches=cfg_lib.microbatches(config)),
                 donate_argnums=0)


def jax_model(word: str, length: int, batch: int, **overrides) -> dict:
  """attnlab's training step for `word` at its comparison size; callables that block until done."""
  config, spec, model, tx, schedule, batch_ = setup(word, length, batch, **overrides)
  state = {"s": steps.create_state(model, tx, spec, jax.random.PRNGKey(0), batch_)}
  params = jax.tree.map(np.asarray, state["s"].params)  # a host copy: the step donates the state
  step = run_step(config, model, tx, spec, schedule)
  inputs = batch_["inputs"]
  lengths = batch_.get("lengths")
  fwd = jax.jit(lambda p: model.apply({"params": p}, inputs, lengths))
  grad = jax.jit(jax.grad(lambda p: jax.numpy.mean(model.apply({"params": p}, inputs, lengths) ** 2)))

  def train_step():
    state["s"], metrics = step(state["s"], batch_)
    jax.block_until_ready(metrics["loss"])

  start = time.perf_counter()
  train_step()
  compile_s = time.perf_counter() - start
  return dict(params=params, batch=batch_, n_params=common.param_count(config),
              compile_s=compile_s, train_step=train_step,
              forward=lambda: jax.block_until_ready(fwd(params)),
              forward_backward=lambda: jax.block_until_ready(grad(params)))


# ----------------------------------------------------------------------------------- PyTorch


def torch_model(word: str, params: dict):
  """The PyTorch equivalent of attnlab's `word` on adding (inputs (B,T,2) -> (B,1))."""
  torch = peers.torch
  nn = torch.nn

  class Recurrent(nn.Module):
    def __init__(self):
      super().__init__()
      cell = _find(params, "cell")["cell"]
      if word == "rnn":
        hidden = np.asarray(cell["W_hh"]).shape[0]
        self.rnn = nn.RNN(2, hidden, batch_first=True, nonlinearity="tanh")
        with torch.no_grad():
          self.rnn.weight_ih_l0.copy_(peers._t(np.asarray(cell["W_xh"]).T))
          self.rnn.weight_hh_l0.copy_(peers._t(np.asarray(cell["W_hh"]).T))
          self.rnn.bias_ih_l0.copy_(peers._t(cell["b_h"]))
          self.rnn.bias_hh_l0.zero_()
      else:
        hidden = np.asarray(cell["W_h"]).shape[0]
        self.rnn = peers._torch_rnn(word, cell, 2, hidden)
      self.head = nn.Linear(hidden, 1)
      with torch.no_grad():
        self.head.weight.copy_(peers._t(np.asarray(params["head"]["kernel"]).T))
        self.head.bias.copy_(peers._t(params["head"]["bias"]))

    def forward(self, x):
      return self.head(self.rnn(x)[0][:, -1])

  if word in ("rnn", "lstm", "gru"):
    return Recurrent()
  if word == "transformer":
    return _TorchTransformer()
  return _TorchLRU()


def _find(tree: dict, key: str) -> dict:
  """The first sub-dict of a params tree that holds `key`."""
  if key in tree:
    return tree
  for v in tree.values():
    if isinstance(v, dict):
      found = _find(v, key)
      if found is not None:
        return found
  return None


def _torch_classes():
  torch = peers.torch
  nn = torch.nn

  class TorchTransformer(nn.Module):
    def __init__(self, d=64, heads=4, d_ff=128, layers=2):
      super().__init__()
      self.proj = nn.Linear(2, d)
      self.layers = nn.ModuleList([nn.TransformerEncoderLayer(
          d, heads, d_ff, dropout=0.0, batch_first=True, norm_first=True, layer_norm_eps=1e-6)
          for _ in range(layers)])
      self.norm = nn.LayerNorm(d, eps=1e-6)
      self.head = nn.Linear(d, 1)
      self.d = d

    def forward(self, x):
      t = x.shape[1]
      pos = torch.arange(t, dtype=torch.float32)[:, None]
      inv = torch.exp(-math.log(10000.0) * torch.arange(0, self.d, 2, dtype=torch.float32) / self.d)
      pe = torch.cat([torch.sin(pos * inv), torch.cos(pos * inv)], -1)
      h = self.proj(x) + pe
      for layer in self.layers:
        h = layer(h)
      return self.head(self.norm(h)[:, -1])

  class LRULayer(nn.Module):
    def __init__(self, h=48, n=64, r_min=0.9, r_max=0.999, max_phase=2 * math.pi):
      super().__init__()
      u1, u2 = torch.rand(n), torch.rand(n)
      nu_log = torch.log(-0.5 * torch.log(u1 * (r_max**2 - r_min**2) + r_min**2))
      self.nu_log = nn.Parameter(nu_log)
      self.theta_log = nn.Parameter(torch.log(max_phase * u2))
      self.gamma_log = nn.Parameter(torch.log(torch.sqrt(1 - torch.exp(-2 * torch.exp(nu_log)))))
      self.B_re = nn.Parameter(torch.randn(n, h) / math.sqrt(2 * h))
      self.B_im = nn.Parameter(torch.randn(n, h) / math.sqrt(2 * h))
      self.C_re = nn.Parameter(torch.randn(h, n) / math.sqrt(n))
      self.C_im = nn.Parameter(torch.randn(h, n) / math.sqrt(n))
      self.D = nn.Parameter(torch.randn(h))

    def forward(self, u):  # (B,T,H)
      lam = torch.exp(torch.complex(-torch.exp(self.nu_log), torch.exp(self.theta_log)))
      b = torch.complex(self.B_re, self.B_im) * torch.exp(self.gamma_log)[:, None]
      x = torch.einsum("bth,nh->btn", u.to(torch.complex64), b)
      k, power = 1, lam
      while k < x.shape[1]:  # x_t = lam x_{t-1} + bu_t by doubling: log2(T) vector steps
        x = torch.cat([x[:, :k], x[:, k:] + power * x[:, :-k]], 1)
        k, power = 2 * k, power * power
      y = torch.einsum("btn,hn->bth", x, torch.complex(self.C_re, self.C_im)).real
      return y + self.D * u

  class LRUBlock(nn.Module):
    def __init__(self, h=48, n=64):
      super().__init__()
      self.norm, self.lru = nn.LayerNorm(h, eps=1e-6), LRULayer(h, n)
      self.glu_a, self.glu_b = nn.Linear(h, h), nn.Linear(h, h)

    def forward(self, u):
      y = nn.functional.gelu(self.lru(self.norm(u)))
      return u + self.glu_a(y) * torch.sigmoid(self.glu_b(y))

  class TorchLRU(nn.Module):
    def __init__(self, h=48, n=64, layers=4):
      super().__init__()
      self.proj = nn.Linear(2, h)
      self.blocks = nn.ModuleList([LRUBlock(h, n) for _ in range(layers)])
      self.norm, self.head = nn.LayerNorm(h, eps=1e-6), nn.Linear(h, 1)

    def forward(self, x):
      h = self.proj(x)
      for block in self.blocks:
        h = block(h)
      return self.head(self.norm(h)[:, -1])

  return TorchTransformer, TorchLRU


def _TorchTransformer():
  return _torch_classes()[0]()


def _TorchLRU():
  return _torch_classes()[1]()


def torch_step(module, batch: dict, word: str, compiled: bool = False) -> dict:
  """A PyTorch training step like attnlab's: MSE, backward, clip at 1.0, Adam (AdamW for the LRU)."""
  torch = peers.torch
  x = torch.from_numpy(np.asarray(batch["inputs"], np.float32))
  y = torch.from_numpy(np.asarray(batch["targets"], np.float32)).reshape(x.shape[0], -1)[:, :1]
  opt = (torch.optim.AdamW(module.parameters(), lr=1e-2, weight_decay=0.05) if word == "lru"
         else torch.optim.Adam(module.parameters(), lr=1e-3))
  fn = torch.compile(module) if compiled else module

  def train_step():
    opt.zero_grad(set_to_none=True)
    loss = (fn(x) - y).pow(2).mean()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(module.parameters(), 1.0)
    opt.step()

  def forward():
    with torch.no_grad():
      fn(x)

  def forward_backward():
    module.zero_grad(set_to_none=True)
    fn(x).pow(2).mean().backward()

  start = time.perf_counter()
  train_step()
  compile_s = time.perf_counter() - start
  return dict(train_step=train_step, forward=forward, forward_backward=forward_backward,
              compile_s=compile_s, n_params=sum(p.numel() for p in module.parameters()))


def _threads(cand: dict, n) -> dict:
  """The candidate's callables, each run with `n` torch threads."""
  def wrap(fn):
    def call():
      peers.torch.set_num_threads(n)
      fn()
    return call
  return {k: wrap(v) if callable(v) else v for k, v in cand.items()} if n else cand


def run(lengths=(100, 500, 1000), batch: int = 64, repeats: int = 3, words=MODELS,
        compile_torch: bool = True, log=print) -> dict:
  """{'rows': [...]}: per (model, T): attnlab and PyTorch step times, ratios, forward/backward shares."""
  rows = []
  threads = peers.torch.get_num_threads() if peers.torch_available() else None
  for length in lengths:
    for word in words:
      ours = jax_model(word, length, batch)
      cands = {"attnlab": ours}
      if peers.torch_available():
        peers.torch.manual_seed(0)
        cands["torch"] = _threads(torch_step(torch_model(word, ours["params"]), ours["batch"], word),
                                  threads)
        if threads and threads > 1:  # OpenMP threads spin: on a shared machine one can be faster
          cands["torch 1 thread"] = _threads(torch_step(torch_model(word, ours["params"]),
                                                        ours["batch"], word), 1)
        if compile_torch:
          try:
            cands["torch.compile"] = _threads(torch_step(torch_model(word, ours["params"]),
                                                         ours["batch"], word, compiled=True), threads)
          except Exception as e:  # no C++ toolchain, or a graph break it cannot handle
            log(f"  torch.compile {word} T={length}: failed ({type(e).__name__}: "
                f"{str(e).splitlines()[0][:80] if str(e) else ''})")
      fns = {}
      for name, c in cands.items():
        for part in ("train_step", "forward", "forward_backward"):
          fns[f"{name}/{part}"] = c[part]
      times = {k: timing.median(v) for k, v in timing.interleaved(fns, repeats, pause_s=PAUSE_S).items()}
      row = dict(model=word, T=length, batch=batch, torch_threads=threads)
      for name, c in cands.items():
        step_s = times[f"{name}/train_step"]
        row[name] = dict(step_s=step_s, steps_per_s=1 / step_s, compile_s=c["compile_s"],
                         n_params=c["n_params"], forward_s=times[f"{name}/forward"],
                         forward_backward_s=times[f"{name}/forward_backward"])
      peer = [n for n in cands if n != "attnlab"]
      if peer:
        best = min(peer, key=lambda n: row[n]["step_s"])
        row["fastest_torch"] = best
        row["ratio"] = row[best]["step_s"] / row["attnlab"]["step_s"]
      rows.append(row)
      a = row["attnlab"]
      line = (f"  {word:12s} T={length:5d}  attnlab {1e3 * a['step_s']:8.1f} ms "
              f"(fwd {a['forward_s'] / a['step_s']:4.0%}, fwd+bwd {a['forward_backward_s'] / a['step_s']:4.0%})")
      for n in peer:
        line += f"  {n} {1e3 * row[n]['step_s']:8.1f} ms"
      if peer:
        line += f"  ratio {row['ratio']:.2f}x"
      log(line)
  return dict(rows=rows, lengths=list(lengths), batch=batch)
