"""K training steps per dispatch: the loop hands the device K steps at once and reads their
metrics once, so the host does no work per step.

  multi = scan_steps(train_step)          # (state, batches stacked on axis 0) -> (state, metrics)
  k = dispatch_length(step, configs, next_eval)
  source = HostBatches(iterator, ahead, place)   # next_k(k) -> k batches stacked, placed
  sums = StepSums(num_runs)                      # train sums added on the host, in step order

A dispatch ends at the next step where the host has something to do: a log, an evaluation, a
checkpoint, the end of the run, or after config.max_steps_per_dispatch steps (so SIGTERM, seen
between dispatches, is answered within that many steps). With config.criterion='hochreiter1997'
the solved check reads every step's training sums and a run stops at the step that meets it: on
the device stream the dispatch's program ends early at the first step where the rule may be met
(`fused_steps_until`, DeviceStepsUntil), elsewhere K = 1. A dispatch of the device stream
(config.data.on_device) is one program whatever K
(`fused_steps`, DeviceSteps: a dynamic trip count, batches drawn inside); one of host batches runs
as `chunks` of a few lengths (each compiles once), queued back to back. The scan returns every step's metrics (K small arrays): the host checks them for
non-finite values and adds the train sums in the order the one-step loop added them.
"""
import jax
import jax.numpy as jnp
import numpy as np
from jax.extend import core as jax_core

from attnlab.train import criteria

DEFAULT_MAX_STEPS = 50
# hochreiter1997 on the device stream: K-step dispatches that end where the rule may be met
# (fused_steps_until); False: one step per dispatch, as before it (tests compare the two).
EARLY_EXIT = True
CHECKED = ("loss", "grad_norm", "grad_norm_clipped")  # what a non-finite step's log holds


def scan_steps(train_step, trace_once: bool = True):
  """(state, batch) -> (state, metrics)  to  (state, K batches stacked on axis 0) -> (state,
  every step's metrics stacked on axis 0): the K steps run in one program (lax.scan).

  trace_once: the step is traced once (`traced_once`) and replayed in the program of every K (the
  loop compiles up to three: `chunks`); False where it reads a named axis (pmap), which make_jaxpr
  alone cannot trace."""
  step = traced_once(train_step) if trace_once else train_step

  def multi(state, batches):
    return jax.lax.scan(step, state, batches)

  return multi


def dispatch_length(step: int, configs: list, next_eval: int, early_exit: bool = False) -> int:
  """Steps in the dispatch after `step`: up to the next log (of any run), evaluation,
  checkpoint or end of run, at most max_steps_per_dispatch; 1 under hochreiter1997 unless the
  dispatch ends itself where the rule may be met (`early_exit`: fused_steps_until)."""
  config = configs[0]
  if config.get("criterion", "task") == "hochreiter1997" and not early_exit:
    return 1
  ends = [next_eval, _next_multiple(step, config.checkpoint_every), config.num_train_steps,
          step + config.get("max_steps_per_dispatch", DEFAULT_MAX_STEPS)]
  ends += [_next_multiple(step, c.log_every) for c in configs]
  return min(ends) - step


def fused_steps(train_step, batch_fn, max_steps: int):
  """(state, first_step, n) -> (state, metrics with a leading axis of max_steps): n <= max_steps
  training steps as ONE program whatever n (a dynamic trip count: lax.fori_loop), the batch of
  each step drawn inside it from the step alone (`batch_fn(step)`, attnlab.data.on_device). Row i
  holds step first_step + i's metrics, rows n and beyond zeros. One compilation per run instead of
  one per chunk length (and per batch-drawing program): the default job's dispatches have lengths
  from 1 to 50 (geometric evaluation schedules). The step (batch drawn, then trained on) is traced
  once: the metric rows' shapes come from that trace, and the loop body replays it."""
  step_at = _step_at(train_step, batch_fn)

  def run(state, first_step, n):
    rows = _empty_rows(step_at, state, first_step, max_steps)

    def body(i, carry):
      state, rows = carry
      state, metrics = step_at(state, first_step + i)
      return state, _with_row(rows, metrics, i)

    return jax.lax.fori_loop(0, n, body, (state, rows))

  return run


def fused_steps_until(train_step, batch_fn, max_steps: int):
  """fused_steps that also ends after the first step at which the hochreiter1997 window of a
  watched run may be met: (state, first_step, n, window, watch, mse) -> (state, rows, steps run).

  window: the runs' windows as criteria.device_window gives them ((W, ..., 3) float32, oldest
  first), updated in the program as a ring from every step's metric sums; watch (...) bool: the runs
  whose rule counts (not solved, not stopped); mse (...): their thresholds. The program runs
  steps first_step .. first_step + n - 1 but stops after the first one at which
  criteria.possibly_met holds for a watched run; `steps run` (an int32) says how many it ran, the
  rows beyond it are zeros. The step is traced once, as in fused_steps."""
  step_at = _step_at(train_step, batch_fn)

  def run(state, first_step, n, window, watch, mse):
    rows = _empty_rows(step_at, state, first_step, max_steps)
    size = window.shape[0]

    def body(carry):
      i, state, rows, window, _ = carry
      state, metrics = step_at(state, first_step + i)
      rows = _with_row(rows, metrics, i)
      # entry i overwrites the oldest: the window arrives oldest first, so that is index i mod W
      entry = criteria.window_entry(metrics["sums"]).astype(window.dtype)
      window = jax.lax.dynamic_update_index_in_dim(window, entry, i % size, 0)
      met = jnp.any(watch & criteria.possibly_met(window, mse))
      return i + 1, state, rows, window, met

    carry = (jnp.int32(0), state, rows, jnp.asarray(window), jnp.bool_(False))
    ran, state, rows, _, _ = jax.lax.while_loop(lambda c: (c[0] < n) & ~c[4], body, carry)
    return state, rows, ran

  return run


def _step_at(train_step, batch_fn):
  """(state, step) -> train_step on the batch drawn for `step`, traced once (`traced_once`)."""
  return traced_once(lambda state, step: train_step(state, batch_fn(step)))


def _empty_rows(step_at, state, first_step, max_steps: int):
  """Zeros of max_steps rows of the metrics `step_at` returns (their shapes from its trace)."""
  shapes = step_at.out_shapes(state, first_step)[1]
  return jax.tree.map(lambda x: jnp.zeros((max_steps,) + x.shape, x.dtype), shapes)


def _with_row(rows, metrics, i):
  """rows with row i set to one step's metrics."""
  return jax.tree.map(lambda r, m: jax.lax.dynamic_update_index_in_dim(r, m, i, 0), rows, metrics)


class traced_once:
  """fn (pure, of pytrees of arrays) traced to a jaxpr once per input shapes and replayed at every
  call (jax.extend.core.jaxpr_as_fun): the replay binds the primitives the trace recorded, so a
  program built from it is the one tracing fn there would build, without running fn's Python (a
  model's forward and backward: 0.2-0.5 s per trace on CPU) again. `out_shapes(*args)`: fn's
  output shapes (jax.ShapeDtypeStruct), from the same trace. Args may be tracers."""

  def __init__(self, fn):
    self.fn, self._traces = fn, {}
    # jit names its program after this (jit_create_state): the persistent cache key is unchanged
    self.__name__ = getattr(fn, "__name__", None) or getattr(getattr(fn, "func", None),
                                                             "__name__", "traced_once")

  def _trace(self, args):
    leaves, tree = jax.tree.flatten(args)
    avals = tuple(jax.ShapeDtypeStruct(jnp.shape(x), jnp.result_type(x),
                                       weak_type=getattr(jax.typeof(x), "weak_type", False))
                  for x in leaves)
    key = (tree, avals)
    if key not in self._traces:
      closed, shapes = jax.make_jaxpr(self.fn, return_shape=True)(*jax.tree.unflatten(tree, avals))
      self._traces[key] = (closed, shapes)
    return leaves, self._traces[key]

  def out_shapes(self, *args):
    return self._trace(args)[1][1]

  def __call__(self, *args):
    leaves, (closed, shapes) = self._trace(args)
    out = jax_core.jaxpr_as_fun(closed)(*leaves)
    return jax.tree.unflatten(jax.tree.structure(shapes), out)


MID_CHUNK = 8  # the one program length between max_steps and 1


def chunks(length: int, max_steps: int) -> list:
  """A dispatch of `length` steps as programs of max_steps, MID_CHUNK or 1 steps, largest first
  (37, max 50: [8, 8, 8, 8, 1, 1, 1, 1, 1]), queued back to back: a run compiles at most three
  train-step programs (and three batch programs on the device) whatever its schedule. Every program
  length costs a compilation, which dominated short runs (the default job) when each power of two
  had its own."""
  out = []
  for size in sorted({max_steps, min(MID_CHUNK, max_steps), 1}, reverse=True):
    out += [size] * (length // size)
    length %= size
  return out


def nonfinite_steps(metrics, active: list) -> list:
  """(step index i, run k) of every non-finite loss or gradient norm of runs `active` in a
  dispatch's metrics ((steps, runs) arrays), the last step left out (the loop checks it run by
  run with that step's logs), in the one-step loop's order: by step, then by run."""
  bad = ~(np.isfinite(metrics["loss"]) & np.isfinite(metrics["grad_norm"]))
  return [(int(i), k) for i in np.flatnonzero(bad[:-1].any(axis=1)) for k in active if bad[i, k]]


def _next_multiple(step: int, every: int) -> int:
  return (step // every + 1) * every


class StepSums:
  """Each run's training metric sums since its last log, added on the host one step at a time
  (float32, in the order of the one-step loop's losses.add_sums: logged means are unchanged).

  A checkpoint between two logs keeps them (`state(k)` in its meta, META_KEY), so a run resumed
  there logs the means a run trained straight logs.
  """

  META_KEY = "train_sums"

  def __init__(self, num_runs: int):
    self.num_runs, self.total = num_runs, None
    self._restored = {}  # run -> {name: (total, count)} from a checkpoint, until the first add

  def add(self, sums):
    """sums: {name: (K, runs, 2)} of one dispatch's steps."""
    if self.total is None:  # zeros: 0 + x is x exactly, as the one-step loop's first add
      self.total = {n: np.zeros(v.shape[1:], np.float32) for n, v in sums.items()}
      for k, restored in self._restored.items():
        for n, v in restored.items():
          self.total[n][k] = np.asarray(v, np.float32)
    for i in range(next(iter(sums.values())).shape[0]):
      self.total = {n: self.total[n] + sums[n][i] for n in self.total}

  def of(self, k: int) -> dict:
    """Run k's sums ({name: (2,)})."""
    return {name: v[k] for name, v in self.total.items()}

  def reset(self, k: int):
    """Run k starts again from zero (after its log)."""
    for v in self.total.values():
      v[k] = 0

  def state(self, k: int) -> dict:
    """{META_KEY: run k's sums as JSON lists} while it has steps not yet logged, else {}."""
    if self.total is None or not any(v[k].any() for v in self.total.values()):
      return {}
    return {self.META_KEY: {n: [float(x) for x in v[k]] for n, v in self.total.items()}}

  def restore(self, k: int, meta: dict):
    """Run k's sums from a checkpoint's meta (none there: zeros)."""
    if self.META_KEY in meta:
      self._restored[k] = meta[self.META_KEY]


class HostBatches:
  """The training batches from a resumable host iterator (grain's), K at a time.

  `prefetcher`: an attnlab.data.prefetch.Prefetcher of host batches (it reads ahead while the
  device computes); `place(list of host batches) -> placed batches stacked on a leading axis`.
  get_state() is the iterator's position after the last batch returned, as in the one-step loop,
  so a checkpoint resumes at the same example. Any source with next_k, get_state and close fits
  the loop (e.g. batches made on the device from the step).
  """

  def __init__(self, prefetcher, place):
    self._it, self._place = prefetcher, place

  def next_k(self, k: int):
    return self._place([next(self._it) for _ in range(k)])

  def get_state(self):
    return self._it.get_state()

  def close(self):
    self._it.close()


class DeviceBatches:
  """The training batches drawn on the device from the step alone (attnlab.data.on_device).

  `k_batches_fn(first_step, k)`: the batches of steps first_step .. first_step + k - 1 stacked on a
  leading axis (jitted here, k static); `place`: Parallel.place_stacked. get_state() is the step of
  the last batch returned: nothing else is needed to resume the stream.
  """

  def __init__(self, k_batches_fn, place, step: int):
    self._draw, self._place, self._step = jax.jit(k_batches_fn, static_argnums=1), place, step

  def next_k(self, k: int):
    batches = self._draw(self._step + 1, k)
    self._step += k
    return self._place(batches)

  def get_state(self):
    return {"device_step": self._step}

  def close(self):
    pass


class DeviceSteps:
  """Dispatches of the training steps whose batches are drawn inside the train program
  (`fused_steps`, jitted as `run(state, first_step, n)`): `train(state, k)` -> (state, metrics of
  the k steps, still on the device and max_steps long: `first_rows` cuts them once fetched).
  get_state() is the step of the last batch drawn, as DeviceBatches'."""

  def __init__(self, run, step: int):
    self._run, self._step = run, step

  def train(self, state, k: int):
    state, metrics = self._run(state, np.int32(self._step + 1), np.int32(k))
    self._step += k
    return state, metrics

  def get_state(self):
    return {"device_step": self._step}

  def close(self):
    pass


class DeviceStepsUntil(DeviceSteps):
  """DeviceSteps of a `fused_steps_until` program (hochreiter1997): `train(state, k, window, watch,
  mse)` -> (state, metrics still on the device, steps run <= k); the stream advances by the steps
  run."""

  def train(self, state, k: int, window, watch, mse):
    first = np.int32(self._step + 1)
    state, metrics, ran = self._run(state, first, np.int32(k), window, watch, mse)
    ran = int(ran)  # waits for the dispatch: the next one starts at the step after its last
    self._step += ran
    return state, metrics, ran


def first_rows(metrics, k: int):
  """The first k steps' rows of fetched metrics (NumPy arrays with a leading steps axis)."""
  return jax.tree.map(lambda x: x[:k], metrics)


def stack(batches: list) -> dict:
  """Host batches (dicts of NumPy arrays) stacked on a new leading axis."""
  return {key: np.stack([b[key] for b in batches]) for key in batches[0]}
