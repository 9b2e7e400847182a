"""The experiment config: its common fields, and validation that runs before anything compiles.

Every config has:
  seed (initialisation and dropout), data_seed (examples and their order), num_train_steps, batch_size (global, across all devices and hosts), eval_every,
  checkpoint_every, log_every, num_eval_batches, label_smoothing, dtype ('float32' | 'bfloat16':
  compute dtype; parameters stay float32), parallelism ('jit' | 'pmap'), seed_parallelism ('auto' |
  'vmap' | 'map' | 'sequential': how runs that differ only in POPULATION_FIELDS (seed and the
  optimizer's scalars) train together: one program vmapped over the runs, one program looping over
  them, or one run after another),
  mesh.data / mesh.model (-1 = all remaining devices), logical_axis_rules, distributed (None = from
  the environment),
  on_nonfinite ('stop' | 'record'), prefetch_batches (train batches read ahead of the
  next dispatch, in a background thread; 0: on demand), microbatches (k: the train step runs its
  batch in k microbatches, the same gradient; 0: k by backend and model, `MICROBATCH_BYTES`),
  max_steps_per_dispatch (the most training
  steps run in one program between two looks of the host: SIGTERM is answered within that many
  steps; see attnlab.train.dispatch), log_grad_flow (gradient flow at every evaluation, see
  attnlab.analysis.flow_logging), checkpoint.{keep, best_metric, best_mode, async_save},
  check_memory (True: refuse a training step whose estimated memory exceeds the machine's, before
  anything is made or compiled, see attnlab.train.memory),
  model.* (see `attnlab.models.default_config`), optimizer.* (see `attnlab.train.optim`), and
  task.*: name, the task generator's parameters (e.g. seq_len), and the data fields
    source     'generated' (fresh examples without end, drawn from (seed, index)) or 'prepared'
               (a tfds dataset prepared in data_dir with `python -m attnlab.data.prepare`)
    data_dir   where prepared datasets live (None: $ATTNLAB_DATA_DIR or ~/tensorflow_datasets)
    num_train  > 0: a fixed training set of that many examples (e.g. ListOps 96k); 0: unlimited
  data.on_device  where the training stream is drawn (attnlab.data.on_device): True: inside the
                  compiled step with jax.random, keyed by (data_seed, step) (a different stream
                  from the host one: same distribution, other examples); False: the host pipeline
                  (NumPy generator, grain); 'auto' (default): on the device where the task has a
                  device generator (on_device.SUPPORTED) with source='generated' and num_train=0,
                  else the host pipeline (`data_on_device` resolves it). Validation and test
                  batches are the host ones either way. Fixed for a run; a workdir from before the
                  field existed used the host pipeline (ADDED_FIELDS: False).
  Evaluation uses the fixed validation split: num_eval_batches x batch_size examples.
  Solving (attnlab.tasks.criterion(task) says when a task counts as solved):
    criterion             'task' (default): the task's criterion, judged at each evaluation;
                          'hochreiter1997': Hochreiter & Schmidhuber's stopping rule on the
                          training stream, judged at every step (attnlab.train.criteria; regression
                          tasks only). Fixed for a run: a resumed run keeps its window.
    stop_when_solved      True: end the run at the first evaluation (hochreiter1997: the first
                          step) that meets the criterion; it records solved_step and
                          solved_sequences (= solved_step x batch_size) in metrics.jsonl and saves
                          a checkpoint there, and a rerun trains nothing.
                          False (default): the solved step is recorded and training goes on.
    eval_schedule         'fixed': evaluate every eval_every steps; 'geometric': the next
                          evaluation after step s is at s + max(eval_every, floor(eval_precision *
                          s)), so a solved step is known to within max(eval_every,
                          eval_precision x step) at a cost of about log(steps) evaluations.
    eval_precision        the relative spacing of the geometric schedule (> 0), default 0.1.
    final_eval_sequences  > 0: at the end of the run (solved or at num_train_steps) evaluate on this
                          many held-out sequences of the test split; metrics.jsonl and the result
                          get final_loss, final_score, ..., final_wrong (sequences missing the
                          per-sequence criterion) and final_sequences. 0 (default): none.
  eval_lengths            lengths beyond (or below) training: at the end of the run the test split
                          is evaluated with task.seq_len set to each, final_eval_sequences sequences
                          (else num_eval_batches x batch_size) per length, logged as
                          final_len{L}_score, ..._loss, ..._wrong, ..._errors. () (default): none.
"""
import ast

import jax
import ml_collections

from attnlab import models, tasks
from attnlab.data import on_device
from attnlab.train import criteria, losses, memory, optim, steps

# Fields of config.task that are not parameters of the task generator.
TASK_DATA_FIELDS = ("name", "source", "data_dir", "num_train", "split")
# Fields that may change between a run and its resumption.
RESUMABLE_FIELDS = ("num_train_steps", "eval_every", "checkpoint_every", "log_every", "log_grad_flow",
                    "num_eval_batches", "prefetch_batches", "checkpoint.keep", "checkpoint.async_save",
                    "distributed", "task.data_dir", "stop_when_solved", "eval_schedule",
                    "eval_precision", "final_eval_sequences", "eval_lengths", "seed_parallelism",
                    "model.scan", "check_memory", "max_steps_per_dispatch", "microbatches")
# Fields added after runs were recorded, with the value that keeps the old behaviour: a workdir whose
# config.json lacks one of them resumes when the new config has that value.
ADDED_FIELDS = {"model.carry_bias": 0.0, "model.norm": "layer", "optimizer.recurrent_lr_scale": 1.0,
                "optimizer.recurrent_params": ["nu_log", "theta_log", "gamma_log"],
                "optimizer.schedule_steps": None, "model.selective": True, "task.min_len": None,
                "model.recurrent_init": "orthogonal", "model.input_std": None, "model.block": "cell",
                "model.d_ff": None, "model.attention": "softmax", "criterion": "task",
                "task.variant": "le2015", "check_memory": True, "data.on_device": False}
# Fields in which the runs of one population differ (`population_key`): trained as one program,
# vmapped or looped (seed_parallelism), each member's optimizer state carrying its own values
# (optim.HYPERPARAMS). The schedule's name, the optimizer's and everything else stay shared.
POPULATION_FIELDS = ("seed", "optimizer.learning_rate", "optimizer.warmup_steps",
                     "optimizer.schedule_steps", "optimizer.clip_norm", "optimizer.weight_decay")
PARALLELISMS = ("jit", "pmap")
SEED_PARALLELISMS = ("auto", "vmap", "map", "sequential")
# Where seed_parallelism='auto' loops over the seeds inside one program ('map', jax.lax.map) instead
# of vmapping them: per backend, every model but those listed in `vmap_shorter`, which vmap below
# that seq_len. Elsewhere 'auto' vmaps (on the H200 vmapped seeds cost nothing extra: host-bound
# steps). BENCHMARKS.md "Choices by backend" has the measurement (benchmarks/results/
# seed_choice_cpu.json: 3 seeds, batch 64, adding on 2 CPU cores; vmapped / looped step time at T=25
# and 100: rnn 1.21, 1.14; gru 1.43, 1.16; lru 1.04, 1.17; transformer 1.58, 1.14; lstm 0.88, 1.13).
SEED_LOOP = {"cpu": dict(vmap_shorter={"lstm": 100})}
# Where microbatches=0 (auto) splits a step's batch (`steps.Microbatching`): per backend, the models
# split and the bytes one microbatch's (rows, T, d_model) float32 activations may take. On 2 CPU
# cores the comparison Transformer's training step (batch 64, d_model 64) in microbatches of at
# most 640 KiB ran 1.49x (T=150, 4 microbatches), 1.49x (T=500, 16) and 1.18x (T=1000, 32)
# faster than in one pass; T <= 40 stays one pass; the LSTM and GRU are not split (the LSTM 1.06x
# slower in 2 at T=100). benchmarks/results/microbatch_choice_cpu.json, BENCHMARKS.md "Choices by
# backend".
MICROBATCH_BYTES = {"cpu": dict(models=("transformer",), budget=640 << 10)}
EVAL_SCHEDULES = ("fixed", "geometric")
ON_DEVICE_CHOICES = ("auto", True, False)  # config.data.on_device
DTYPES = ("float32", "bfloat16")
# Logical parameter axes -> mesh axes: attention heads and MLP / recurrent hidden units may be
# split over `model`; everything else is replicated.
DEFAULT_AXIS_RULES = (("heads", "model"), ("mlp", "model"), ("hidden", "model"), ("embed", None),
                      ("vocab", None))


def base_config(model: str, task: str, **task_params) -> ml_collections.ConfigDict:
  """A complete config for `model` on `task` with attnlab's defaults."""
  spec = tasks.spec(task, **task_params)
  config = ml_collections.ConfigDict()
  config.seed = 0  # parameters and dropout
  config.data_seed = 0  # which examples and in what order: shared by runs that differ in seed
  config.num_train_steps = 1000
  config.batch_size = 64
  config.eval_every = 200
  config.checkpoint_every = 200
  config.log_every = 50
  config.num_eval_batches = 8
  config.label_smoothing = 0.0
  config.dtype = "float32"
  config.parallelism = "jit"
  config.seed_parallelism = "auto"  # seeds: 'vmap' | 'map' (looped) | 'sequential' | by backend
  config.mesh = ml_collections.ConfigDict(dict(data=-1, model=1))
  config.logical_axis_rules = DEFAULT_AXIS_RULES
  config.distributed = ml_collections.FieldReference(None, field_type=bool)
  config.on_nonfinite = "stop"
  config.prefetch_batches = 2
  config.max_steps_per_dispatch = 50  # steps per program between host looks (SIGTERM checks)
  config.microbatches = 0  # k microbatches per step (same gradient); 0: by backend and model
  config.log_grad_flow = False  # gradient norms through time at init and every evaluation
  config.criterion = "task"  # or "hochreiter1997": the 1997 stopping rule (train.criteria)
  config.stop_when_solved = False  # True: stop at the first evaluation meeting the task's criterion
  config.eval_schedule = "fixed"  # or "geometric": evaluations eval_precision x step apart
  config.eval_precision = 0.1
  config.final_eval_sequences = 0  # > 0: a last evaluation on this many test-split sequences
  config.eval_lengths = ()  # task.seq_len values to evaluate at the end (length generalisation)
  config.check_memory = True  # refuse, before compiling, a step estimated not to fit (train.memory)
  config.checkpoint = ml_collections.ConfigDict(dict(
      keep=3, best_metric="eval_score", best_mode="max", async_save=True))
  config.model = models.default_config(model)
  config.task = ml_collections.ConfigDict(dict(
      spec.params, name=task, source="generated", data_dir=ml_collections.FieldReference(None, str),
      num_train=0))
  if "seq_len" not in config.task:  # a task whose length follows from other parameters (seq2seq)
    config.task.seq_len = ml_collections.FieldReference(None, field_type=int)
  config.optimizer = optim.default_config()
  # 'auto' | True | False (any of the three may be set: hence field_type=object)
  config.data = ml_collections.ConfigDict(dict(
      on_device=ml_collections.FieldReference("auto", field_type=object)))
  return config


def task_params(config) -> dict:
  """The task generator's parameters in config.task (without the data fields).

  `seq_len` is always in config.task; it is None for tasks whose length is not a parameter
  (seq2seq tasks set theirs with min_len/max_len), and setting it there is an error.
  """
  params = {k: v for k, v in config.task.items() if k not in TASK_DATA_FIELDS}
  if "seq_len" in params and "seq_len" not in tasks.spec(config.task.name).params:
    del params["seq_len"]
  return params


def task_spec(config):
  """The TaskSpec of config.task; ValueError naming the field on a bad task or parameter."""
  try:
    spec = tasks.spec(config.task.name, **task_params(config))
  except ValueError as e:
    raise ValueError(f"config.task: {e}") from None
  if config.task.get("seq_len") is not None and "seq_len" not in spec.params:
    raise ValueError(f"config.task.seq_len={config.task.seq_len} cannot be set for task "
                     f"{spec.name!r}, whose length follows from {sorted(spec.params)}")
  return spec


def model_config(config, spec) -> ml_collections.ConfigDict:
  """config.model with the fields the task decides (vocabulary, outputs, maximum length)."""
  m = ml_collections.ConfigDict(config.model.to_dict())
  if m.name in models.SEQ2SEQ_MODELS:
    if spec.kind != "seq2seq":
      raise ValueError(f"config.model.name={m.name!r} is a seq2seq model but task "
                       f"{spec.name!r} is {spec.kind}; use one of {list(models.SEQUENCE_MODELS)}")
    m.vocab_size = spec.vocab_size
  else:
    if spec.kind == "seq2seq":
      raise ValueError(f"task {spec.name!r} needs a seq2seq model, got config.model.name="
                       f"{m.name!r}; valid: {list(models.SEQ2SEQ_MODELS)}")
    m.vocab_size = spec.vocab_size
    m.num_outputs = spec.num_outputs
    m.output = spec.output
  if "max_len" in m:
    m.max_len = max(m.max_len, spec.seq_len + 1, (spec.target_len or 0) + 1)
  return m


def seed_parallelism(config) -> str:
  """'vmap', 'map' or 'sequential': config.seed_parallelism, with 'auto' resolved by SEED_LOOP."""
  choice = config.get("seed_parallelism", "auto")
  if choice != "auto":
    return choice
  rule = SEED_LOOP.get(jax.default_backend())
  if rule is None:
    return "vmap"
  shorter = rule["vmap_shorter"].get(config.model.name)
  return "vmap" if shorter and config.task.get("seq_len", shorter) < shorter else "map"


def microbatches(config, runs_together: int = 1):
  """config.microbatches as make_train_step takes it: k, or for 0 a `steps.Microbatching` where
  MICROBATCH_BYTES lists the backend and model on one device (else 1). `runs_together`: the runs
  vmapped in one step (their activations share the budget)."""
  choice = config.get("microbatches", 0)
  if choice:
    return choice
  rule = MICROBATCH_BYTES.get(jax.default_backend())
  if rule is None or config.model.name not in rule["models"] or jax.device_count() > 1:
    return 1
  width = models.resolve_config(config.model)["d_model"]
  return steps.Microbatching(rule["budget"], width * runs_together)


def population_key(config) -> tuple:
  """What the runs of one population share: every field but POPULATION_FIELDS, and the optimizer
  state's structure (`optim.structure`: clipping, AdamW's weight decay on or off). Runs with equal
  keys train as one program (`attnlab.train.train_seeds`, `attnlab.sweep`)."""
  flat = flatten(config.to_dict())
  return tuple(sorted((k, repr(v)) for k, v in flat.items() if k not in POPULATION_FIELDS)) + \
      optim.structure(config.optimizer)


def flatten(d: dict, prefix: str = "") -> dict:
  """{'model': {'hidden_size': 128}} -> {'model.hidden_size': 128} (a config as dotted fields)."""
  out = {}
  for k, v in d.items():
    key = f"{prefix}{k}"
    if isinstance(v, dict):
      out.update(flatten(v, key + "."))
    else:
      out[key] = v
  return out


def _positive(config, key):
  value = config[key]
  if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
    raise ValueError(f"config.{key}={value!r}; must be a positive integer")


def validate(config, num_devices: int, num_processes: int = 1):
  """Checks `config` before any compilation. Returns (TaskSpec, resolved model config)."""
  for key in ("batch_size", "eval_every", "checkpoint_every", "log_every", "num_eval_batches"):
    _positive(config, key)
  if "max_steps_per_dispatch" in config:
    _positive(config, "max_steps_per_dispatch")
  for key in ("num_train_steps", "prefetch_batches", "final_eval_sequences"):
    if not isinstance(config[key], int) or isinstance(config[key], bool) or config[key] < 0:
      raise ValueError(f"config.{key}={config[key]!r}; must be an integer >= 0")
  if config.parallelism not in PARALLELISMS:
    raise ValueError(f"config.parallelism={config.parallelism!r}; valid choices: {list(PARALLELISMS)}")
  k = config.get("microbatches", 0)
  if not isinstance(k, int) or isinstance(k, bool) or k < 0 or (k and config.batch_size % k):
    raise ValueError(f"config.microbatches={k!r}; valid choices: 0 (by backend and model) or a "
                     f"positive integer dividing batch_size={config.batch_size}")
  if config.seed_parallelism not in SEED_PARALLELISMS:
    raise ValueError(f"config.seed_parallelism={config.seed_parallelism!r}; valid choices: "
                     f"{list(SEED_PARALLELISMS)}")
  if config.dtype not in DTYPES:
    raise ValueError(f"config.dtype={config.dtype!r}; valid choices: {list(DTYPES)}")
  if config.on_nonfinite not in ("stop", "record"):
    raise ValueError(f"config.on_nonfinite={config.on_nonfinite!r}; valid choices: ['stop', 'record']")
  keep = config.checkpoint.keep
  if not isinstance(keep, int) or isinstance(keep, bool) or keep < 1:
    raise ValueError(f"config.checkpoint.keep={keep!r}; must be an integer >= 1 (the last "
                     "checkpoints kept: a run resumes from them)")
  if config.checkpoint.best_mode not in ("max", "min"):
    raise ValueError(f"config.checkpoint.best_mode={config.checkpoint.best_mode!r}; "
                     "valid choices: ['max', 'min']")
  if not isinstance(config.stop_when_solved, bool):
    raise ValueError(f"config.stop_when_solved={config.stop_when_solved!r}; valid choices: "
                     "[False, True]")
  if config.eval_schedule not in EVAL_SCHEDULES:
    raise ValueError(f"config.eval_schedule={config.eval_schedule!r}; valid choices: "
                     f"{list(EVAL_SCHEDULES)}")
  precision = config.eval_precision
  if isinstance(precision, bool) or not isinstance(precision, (int, float)) or not precision > 0:
    raise ValueError(f"config.eval_precision={precision!r}; must be a number > 0")
  if not 0.0 <= config.label_smoothing < 1.0:
    raise ValueError(f"config.label_smoothing={config.label_smoothing}; must be in [0, 1)")
  if config.batch_size % num_processes:
    raise ValueError(f"config.batch_size={config.batch_size} does not divide across "
                     f"{num_processes} processes")
  if config.batch_size % num_devices:
    raise ValueError(f"config.batch_size={config.batch_size} does not divide across the "
                     f"{num_devices} devices of the data axis; use a multiple of {num_devices}")
  if config.optimizer.name not in optim.OPTIMIZERS:
    raise ValueError(f"config.optimizer.name={config.optimizer.name!r}; valid choices: "
                     f"{list(optim.OPTIMIZERS)}")
  if config.optimizer.schedule not in optim.SCHEDULES:
    raise ValueError(f"config.optimizer.schedule={config.optimizer.schedule!r}; valid choices: "
                     f"{list(optim.SCHEDULES)}")
  optim.check_config(config.optimizer)  # learning rate, betas, ...: finite and in range
  spec = task_spec(config)
  evaluated = tuple(f"eval_{name}" for name in losses.metric_names(spec))
  if config.checkpoint.best_metric not in evaluated:
    raise ValueError(f"config.checkpoint.best_metric={config.checkpoint.best_metric!r} is not "
                     f"evaluated for task {spec.name!r}; valid choices: {list(evaluated)}")
  mcfg = model_config(config, spec)
  models.resolve_config(mcfg)  # unknown model names and bad model fields fail here
  _check_eval_lengths(config, spec, mcfg)
  criteria.check(config, spec)
  _check_on_device(config, spec)
  if config.get("check_memory", True):  # memory.DoesNotFit before any data is made or compiled
    memory.check(config, spec, mcfg, num_devices)
  return spec, mcfg


def on_device_choice(config):
  """config.data.on_device; a config from before the field existed: ADDED_FIELDS' False."""
  data = config.get("data")
  if data is None or "on_device" not in data:
    return ADDED_FIELDS["data.on_device"]
  return data.on_device


def _on_device_blockers(config, spec) -> list:
  """Why the training stream of `config` cannot be drawn on the device (empty: it can). Only
  fields fixed for a run count, so 'auto' resolves the same way when a run resumes."""
  why = []
  if not on_device.supported(spec.name, spec.params):
    why.append(f"task {spec.name!r} has no on-device generator; supported tasks: "
               f"{', '.join(on_device.SUPPORTED)}")
  if config.task.source != "generated":
    why.append(f"config.task.source={config.task.source!r} reads a prepared dataset; the device "
               "draws only source='generated'")
  if config.task.num_train:
    why.append(f"config.task.num_train={config.task.num_train} is a fixed training set; the "
               "device draws only the unlimited stream (num_train=0)")
  return why


def _check_on_device(config, spec):
  choice = on_device_choice(config)
  if not any(choice is c or (isinstance(c, str) and choice == c) for c in ON_DEVICE_CHOICES):
    raise ValueError(f"config.data.on_device={choice!r}; valid choices: {list(ON_DEVICE_CHOICES)}")
  why = _on_device_blockers(config, spec) if choice is True else []
  if why:
    raise ValueError(f"config.data.on_device=True: {'; '.join(why)}. Set config.data.on_device "
                     "to 'auto' or False to use the host pipeline")
  examples = config.num_train_steps * config.batch_size
  if examples > on_device.MAX_EXAMPLES and data_on_device(config):
    raise ValueError(f"config.data.on_device={choice!r}: num_train_steps x batch_size = "
                     f"{examples} exceeds the {on_device.MAX_EXAMPLES} examples of the device "
                     "stream; set config.data.on_device=False (a new run) or fewer steps")


def data_on_device(config) -> bool:
  """Whether the training stream is drawn on the device: config.data.on_device, 'auto' resolved
  (True where the task has a device generator, source='generated' and num_train=0)."""
  choice = on_device_choice(config)
  if choice == "auto":
    return not _on_device_blockers(config, task_spec(config))
  return choice is True


def _check_eval_lengths(config, spec, mcfg):
  """config.eval_lengths: positive integers, each a valid seq_len of the task the model can read."""
  lengths = config.get("eval_lengths", ())
  if not isinstance(lengths, (tuple, list)) or not all(
      isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in lengths):
    raise ValueError(f"config.eval_lengths={lengths!r}; must be a tuple of positive integers")
  if lengths and "seq_len" not in spec.params:
    raise ValueError(f"config.eval_lengths={tuple(lengths)}: task {spec.name!r} has no seq_len")
  for n in lengths:
    try:
      at = tasks.spec(spec.name, **{**task_params(config), "seq_len": n})
    except ValueError as e:
      raise ValueError(f"config.eval_lengths: {e}") from None
    if mcfg.get("positional") == "learned" and max(at.seq_len, at.target_len or 0) > mcfg.max_len:
      raise ValueError(f"config.eval_lengths: length {n} needs {at.seq_len} learned positions, "
                       f"more than model.max_len={mcfg.max_len}; raise config.model.max_len")


SHORTCUTS = {"steps": "num_train_steps", "seq_len": "task.seq_len", "lr": "optimizer.learning_rate"}


def _literal(text: str):
  try:
    return ast.literal_eval(text)
  except (ValueError, SyntaxError):
    pass
  try:
    return float(text)  # nan, inf: numbers that have no Python literal
  except ValueError:
    return text


def parse_arg(arg, default_model: str):
  """'transformer,seq_len=500' -> ('transformer', {'task.seq_len': 500}).

  The one bare word is the model name; key=value pairs set config fields by dotted path, with the
  shortcuts steps, seq_len and lr.
  """
  model, overrides = default_model, {}
  for part in filter(None, (arg or "").split(",")):
    if "=" in part:
      key, value = part.split("=", 1)
      overrides[SHORTCUTS.get(key.strip(), key.strip())] = _literal(value.strip())
    else:
      model = part.strip()
  return model, overrides


def apply_overrides(config, overrides: dict):
  """Sets dotted fields of config; an unknown field is an error that lists the valid ones."""
  for path, value in overrides.items():
    node, keys = config, path.split(".")
    for key in keys[:-1]:
      if key not in node:
        raise ValueError(f"config has no field {path!r}; valid fields at that level: {sorted(node)}")
      node = node[key]
    if keys[-1] not in node:
      raise ValueError(f"config has no field {path!r}; valid fields: {sorted(node)}")
    node[keys[-1]] = value
  return config
