"""The memory of one training step, estimated from the config before any data is made or compiled.

  estimate = memory.estimate(config, spec, model_config, num_devices)   # an `Estimate`
  memory.check(config, spec, model_config, num_devices)   # `DoesNotFit` when it cannot fit

The estimate, in bytes (float32 = 4, bfloat16 activations = 2), with B the batch of one device
(batch_size / num_devices), T the padded length, L the layers:
  batches      a batch (B x T x channels, tokens 4 bytes each, targets and mask) on the device for
               the step, the `prefetch_batches` ahead and the `num_eval_batches` placed once
  activations  what the backward pass keeps: B x T x L x (a model's values per step and layer),
               e.g. an LSTM's input projections, gates, cells and outputs (about 8 x hidden)
  attention    'plain' attention (and 'fused' off GPU, which XLA computes the same way) keeps the
               (T, T) weights of every layer and head: B x heads x T^2 x (2L + 3), L - 1 layers
               where a last-step readout runs the last block at one row; 'chunked'
               keeps one block of (query chunk, key chunk) logits per (batch, head) pair at a time
  parameters   params, gradients and Adam's two moments: 4 x 4 bytes a parameter
  host         NumPy's examples in the host's memory: about 6 batches' worth while one is drawn
               in float64 and copied to float32, and the `prefetch_batches` ahead
It is compared with the memory of the machine: on CPU, the host's memory (its physical memory, or a
smaller cgroup limit or `ulimit -v`) holds both; on an accelerator, device memory_stats()'s
bytes_limit holds the step and the host's memory the NumPy batches. Runs of several seeds vmapped
together need about that many times the activations; the estimate is of one seed.

A step that cannot fit is refused with `DoesNotFit`, a `Fault` (exit code 74 at the command line, as
the out-of-memory error it prevents): the config is valid, the machine is too small for it; the line
names the estimate, its largest term, the machine's memory and what to change. config.check_memory =
False skips the check (e.g. when the estimate is known to overstate a model).
"""
import dataclasses
import functools
import json
import os
import resource

import jax
import ml_collections

from attnlab import models
from attnlab.errors import Fault
from attnlab.models.attention import resolve_impl
from attnlab.models.heads import reads_last_step
from attnlab.ops.chunked_attention import CHUNK, fit_chunk

FLOAT = 4
# Values the backward pass keeps per step, layer and unit of width (calibrated against XLA's
# compiled memory_analysis() on CPU, tests/test_fault_injection.py): input projections, gates,
# states and outputs of each cell; a Transformer layer's q, k, v, output, norms, residuals
# (x d_model) and its MLP (x d_ff, below).
PER_UNIT = {"rnn": 5, "gru": 14, "lstm": 8, "transformer": 10, "lru": 8, "mamba": 10, "mingru": 15,
            "minlstm": 17, "slstm": 50, "seq2seq_rnn": 10, "seq2seq_attention": 12,
            "transformer_seq2seq": 10}


TERMS = {"batches": "the batches on the device",
         "parameters": "parameters, gradients and Adam state",
         "activations": "the activations kept for the backward pass",
         "attention": "the attention weights", "host batches": "NumPy's batches on the host"}


class DoesNotFit(Fault):
  """The estimated memory of a training step exceeds the machine's."""


@dataclasses.dataclass
class Estimate:
  """Bytes by term: `device` (one training step) and `host` (NumPy batches); `main` the largest."""
  device: dict
  host: dict
  advice: str  # what to change, for the largest term

  @property
  def device_bytes(self) -> int:
    return int(sum(self.device.values()))

  @property
  def host_bytes(self) -> int:
    return int(sum(self.host.values()))

  @property
  def main(self) -> str:
    terms = {**self.device, **self.host}
    return max(terms, key=terms.get)


def size(num_bytes: float) -> str:
  """'1.5 GB': bytes in decimal units."""
  for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
    if num_bytes >= scale:
      return f"{num_bytes / scale:.1f} {unit}"
  return f"{int(num_bytes)} bytes"


@functools.lru_cache(maxsize=64)
def _param_count(model_json: str, input_dim) -> int:
  return models.count_params(ml_collections.ConfigDict(json.loads(model_json)), input_dim)


def param_count(model_config, spec) -> int:
  """Parameters of the model (shapes only, traced at a length of 4; cached by config)."""
  return _param_count(json.dumps(model_config.to_dict(), sort_keys=True), spec.input_dim)


def _width(f: dict) -> int:
  return f.get("hidden_size") or f.get("d_model") or 128


def _activations(f: dict, batch: int, length: int, target_len: int, unit_bytes: int) -> int:
  """Bytes the backward pass keeps, without attention weights (see the module docstring)."""
  name, layers = f["name"], f.get("num_layers") or f.get("encoder_layers") or 1
  per_unit = PER_UNIT.get(name, 12) * _width(f)
  if name in ("rnn", "lstm", "gru"):
    per_unit *= 2 if f["bidirectional"] else 1
    if f["block"] == "residual":
      per_unit += 4 * f["hidden_size"] + 2 * (f["d_ff"] or 4 * f["hidden_size"])
  elif name in ("transformer", "transformer_seq2seq", "mingru", "minlstm", "slstm"):
    per_unit += 2 * (f.get("d_ff") or 4 * _width(f))
  elif name == "mamba":  # the selective scan's states: expand x d_model x d_state a step
    per_unit = int(f["expand"] * f["d_model"] * (6 + 1.2 * f["d_state"]))
  elif name == "lru":
    per_unit += 14 * f["state_size"]  # complex states and their associative scan
  steps = length + (target_len or 0) * (name in models.SEQ2SEQ_MODELS)
  return batch * steps * layers * per_unit * unit_bytes


def _attention(f: dict, batch: int, length: int, target_len: int, unit_bytes: int):
  """(bytes, impl) of the attention weights a step keeps; (0, None) for models without them."""
  if f["name"] not in ("transformer", "transformer_seq2seq", "seq2seq_attention"):
    return 0, None
  heads, layers = f.get("num_heads", 1), f.get("num_layers") or 1
  impl = resolve_impl(f.get("attention_impl", "plain"))
  if f["name"] == "seq2seq_attention":  # additive attention: (target, source) scores
    return batch * (target_len or length) * length * 2 * unit_bytes, "plain"
  if impl == "fused" and jax.default_backend() == "gpu":
    return 0, impl  # cuDNN's flash attention: O(T)
  if impl == "chunked":
    block = fit_chunk(length, CHUNK) * fit_chunk(length, CHUNK)
    return batch * heads * block * FLOAT, impl
  pairs = length * length
  if f["name"] == "transformer_seq2seq":
    t = target_len or length
    pairs += 2 * t * t + t * length
  if reads_last_step_only(f):  # the last block attends from one row (models.heads)
    layers -= 1
    if layers == 0:
      return batch * heads * length * 5 * FLOAT, impl
  return batch * heads * pairs * (2 * layers + 3) * FLOAT, impl


def reads_last_step_only(f: dict) -> bool:
  """Whether `SequenceModel` runs the Transformer's last block at the read-out step alone, for
  resolved model fields (`models.heads.reads_last_step`)."""
  return f["name"] == "transformer" and reads_last_step(
      f.get("output"), f.get("pooling"), f.get("causal"), f.get("attention", "softmax"),
      f.get("num_layers"))


def estimate(config, spec, model_config, num_devices: int = 1) -> Estimate:
  """The bytes of one training step (per device) and of the host's NumPy batches."""
  f = models.resolve_config(model_config)
  batch = max(config.batch_size // max(num_devices, 1), 1)
  length, target_len = spec.seq_len, spec.target_len
  unit_bytes = 2 if config.dtype == "bfloat16" else FLOAT
  channels = spec.input_dim or 1
  example = FLOAT * (length * channels + (target_len or 1) * 2 + 1)
  placed = 1 + config.prefetch_batches + config.num_eval_batches
  attention, impl = _attention(f, batch, length, target_len, unit_bytes)
  device = {
      "batches": placed * batch * example,
      "activations": _activations(f, batch, length, target_len, unit_bytes),
      "attention": attention,
      "parameters": 4 * FLOAT * param_count(model_config, spec),
  }
  host_batch = config.batch_size * example // max(jax.process_count(), 1)
  host = {"host batches": (6 + config.prefetch_batches) * host_batch}
  found = Estimate(device, host, "")
  found.advice = {
      "attention": f"attention_impl='{impl}' keeps {f.get('num_heads', 1)} heads x "
                   f"(T, T) = ({length}, {length}) weights a layer: use "
                   "model.attention_impl='chunked' (O(T) memory), or a smaller batch_size or "
                   "seq_len",
      "parameters": "use a smaller model (hidden_size / d_model, num_layers)",
  }.get(found.main, "use a smaller batch_size, task.seq_len or model (hidden_size / d_model, "
        "num_layers)")
  return found


def _limits() -> list:
  """[(bytes, what)] of the host's memory: physical memory, a cgroup's limit, ulimit -v."""
  found = [(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"), "this machine's memory")]
  for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
    try:
      with open(path) as fh:
        text = fh.read().strip()
    except OSError:
      continue
    if text.isdigit() and int(text) < 2 ** 60:
      found.append((int(text), f"the memory limit of this container ({path})"))
  soft = resource.getrlimit(resource.RLIMIT_AS)[0]
  if soft != resource.RLIM_INFINITY:
    found.append((soft, "the address-space limit (ulimit -v)"))
  return found


def host_memory():
  """(bytes, what): the memory this process may use on the host."""
  return min(_limits())


def device_memory():
  """(bytes, what) of the first device's memory, or None on CPU or where it is not reported."""
  if jax.default_backend() == "cpu":
    return None
  device = jax.local_devices()[0]
  stats = device.memory_stats() if hasattr(device, "memory_stats") else None
  limit = (stats or {}).get("bytes_limit")
  return (int(limit), f"the memory of {device.device_kind}") if limit else None


def check(config, spec, model_config, num_devices: int = 1) -> Estimate:
  """Raises DoesNotFit, naming the estimate, its main term and the machine's memory, when the step
  (or, on an accelerator, the host's batches) exceeds the memory that holds it."""
  found = estimate(config, spec, model_config, num_devices)
  host, host_what = host_memory()
  device = device_memory()
  if device is None:  # CPU: the host holds everything
    needs = [(found.device_bytes + found.host_bytes, host, host_what,
              {**found.device, **found.host})]
  else:
    needs = [(found.device_bytes, *device, found.device),
             (found.host_bytes, host, host_what, found.host)]
  for need, have, what, terms in needs:
    if need > have:
      main = max(terms, key=terms.get)
      raise DoesNotFit(
          f"a training step of this config needs about {size(need)} of memory (mostly "
          f"{TERMS[main]}: {size(terms[main])}, batch {config.batch_size} x seq_len "
          f"{spec.seq_len}), more than {what}, {size(have)}: {found.advice} "
          "(config.check_memory=False skips this estimate)")
  return found
