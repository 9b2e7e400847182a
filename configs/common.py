"""Model settings shared by the task configs: comparison sizes, each model's recipe, model variants.

Sizes (`MODEL_SIZES`) are chosen so that on adding and copy every model, variants included, has
within 2x the parameters of every other (`param_count(config)`; tests/test_recipes.py checks it):
about 66-70k on adding and 68-101k on copy, except transformer_uniform (no query/key projections:
51k on adding, 52k on copy). Token inputs are embedded into EMBED_DIM = 64 features
for every model (the Transformer's d_model), so the recurrent models' input weights do not grow with
their hidden size.

Recipes and their sources:
  rnn          Elman tanh RNN, H=256; orthogonal W_hh (Saxe et al. 2014 / Le et al. 2015 use
               identity-like init to keep gradients alive; attnlab studies the plain tanh RNN).
  lstm         Hochreiter & Schmidhuber 1997 with the forget gate of Gers et al. 2000, forget-gate
               bias 1 (Gers et al. 2000; Jozefowicz et al. 2015), H=128.
  lstm_chrono  the LSTM with the chrono init of Tallec & Ollivier 2018: b_f ~ log U(1, T_max - 1),
               b_i = -b_f, T_max = the task's distance to bridge (`distance_to_bridge`).
  gru          Cho et al. 2014 (reset before the recurrent product, as in the paper), H=150.
  gru_carry    the GRU whose update gate starts out carrying the state: b_z ~ log U(1, T_max - 1),
               the chrono init of Tallec & Ollivier 2018 applied to the GRU's z (which plays the
               LSTM forget gate's role in h = (1 - z) n + z h_prev), T_max as for lstm_chrono.
               `model.carry_bias=b` sets a constant b_z instead (the GRU form of the forget bias 1).
  lru          Orvieto et al. 2023 with its reference code's recipe (NicolasZucchet/minimal-LRU,
               run_train.py and lru/train_helpers.py): 4 pre-norm blocks (minimal-LRU's default
               depth) d_model=48, state 64, r in [0.9, 0.999], max_phase 2 pi (pi/10 is the paper's
               choice only for its longest image tasks, e.g. Path-X, which attnlab does not have);
               AdamW, weight decay 0.05 except on nu_log/theta_log/gamma_log, whose learning rate
               is x0.5 (minimal-LRU's lr_factor default 0.5); linear warmup, then cosine decay,
               over a FIXED length (`LRU_OPTIMIZER`: 115 warmup steps, cosine to 0 at step 1156,
               whatever a cap up to 1156 steps; a longer run stretches it to its own length; see
               the comment there); mean pooling on
               classification tasks, the last step on adding (below). The paper normalises with BatchNorm (minimal-LRU's default
               norm='batch'); attnlab's default stays LayerNorm because the gradient-flow analysis
               applies models with parameters only: select the paper's with model.norm=batch.
               Dropout: minimal-LRU's default is 0.1; attnlab's generated tasks draw fresh
               examples without end, so nothing is regularised (model.dropout_rate selects it).
  transformer  Vaswani et al. 2017 encoder (sinusoidal positions, ReLU MLP), 2 layers, d=64, 4
               heads, d_ff=128 (2x instead of the paper's 4x, to match the others' sizes), pre-LN
               (Xiong et al. 2020) instead of post-LN, no dropout (fresh data); causal on per-step
               tasks (TaskSpec.output 'step', as the config's task parameters give it),
               bidirectional otherwise.
  mamba        Gu & Dao 2023 (the reference code's block, models/mamba.py): 2 pre-RMSNorm blocks,
               d_model=64, expand 2 (d_inner=128), d_state=16, conv width 4, dt_rank=ceil(d/16).
  mingru       Feng et al. 2024: 2 pre-LN blocks of minGRU + GELU MLP, d_model=64, d_ff=192.
  minlstm      the same with minLSTM, d_ff=160 (its cell has one gate more).
  slstm        Beck et al. 2024 (xLSTM): 2 pre-LN sLSTM blocks, d_model=64, 4 heads, sigmoid forget
               gate, gated GELU MLP with d_ff=64 (1x instead of the paper's 4/3, to match sizes).
  mamba_lti    Mamba with selective=False: dt, B, C do not depend on the input (the LTI ablation of
               Gu & Dao 2023's Table 1; the struggles part's selective-copy comparison).
  transformer_window0
               the Transformer whose attention window is 0 (each position attends only to itself):
               the ablation that removes what attention adds.
  transformer_window1, transformer_window4, transformer_window16
               local attention, |i - j| <= w: with 2 layers a position sees 2w steps each way.
  transformer_uniform
               causal uniform averaging: position i averages the values of steps 0..i with fixed
               equal weights (model.attention='uniform', causal): attention without learnt weights.
               It has no query/key projections, so 2 x 2 x 64 x 65 = 16.6k parameters fewer.
  transformer_rope, transformer_nope
               rotary positions (Su et al. 2021) instead of sinusoidal; no positions at all.
  irnn         Le et al. 2015: ReLU RNN, W_hh = identity, zero bias, W_xh ~ N(0, 0.001^2), H=256
               (the rnn's size and learning rate; they trained with SGD and clipping).
  rnn_block, lstm_block, gru_block, irnn_block
               the cell in minGRU's block (model.block='residual'): 2 pre-LN residual blocks of
               the cell (hidden = d_model) and a GELU MLP, input projection, final LayerNorm; rnn
               d=64, d_ff=192 (minGRU's shape), lstm d=48, d_ff=152, gru d=52, d_ff=156. They
               separate the block design from the recurrence in minGRU vs LSTM/GRU/RNN, and train
               at minGRU's 3e-3.
  The RNN, LSTM and GRU train with Adam at a constant learning rate (`MODEL_LR`, from the recorded
  sweep in docs/results/lr_sweep) and global-norm clipping 1.0 (`make`), not with their papers'
  optimisers (1997: online gradient descent). The Transformer trains with Adam and Vaswani et al.'s
  schedule, warmup then 1/sqrt(step) decay from the peak MODEL_LR, with 100 warmup steps instead of
  the paper's 4000 (`TRANSFORMER_OPTIMIZER`, docs/results/transformer_schedule). Mamba, minGRU, minLSTM and
  sLSTM train with Adam at a constant 3e-3, a rate chosen without that sweep. A recorded tuning
  (configs/compare.py:tuning, one sweep and pick rule for every model) replaces these through `TUNED`.

Readout: on adding every model reads out its LAST valid step (model.pooling='last', set by
configs/adding.py): the recurrent models their final state, the LRU its last output, and the
non-causal Transformer the last token, which must gather the two marked values through attention
(with transformer_window0 it cannot).

A config argument's model word may be a registry name or a variant (`MODEL_VARIANTS`): the variant
builds its registry model (config.model.name) with the variant's fields, and config.model_variant
keeps the word (the registry name when it is not a variant), so a run's config.json says which it
was. lstm_chrono's and gru_carry's chrono_max follow config.task.seq_len (a reference, not a copy):
a sweep or command line that sets task.seq_len later still gets the right T_max.
"""
import math


from attnlab import models, tasks
from attnlab.train import config as cfg_lib

EMBED_DIM = 64
MODEL_SIZES = {
    "rnn": dict(hidden_size=256),
    "lstm": dict(hidden_size=128),
    "gru": dict(hidden_size=150),
    "lru": dict(d_model=48, state_size=64, num_layers=4, r_min=0.9, r_max=0.999,
                max_phase=2 * math.pi),
    "transformer": dict(d_model=EMBED_DIM, num_heads=4, d_ff=128, num_layers=2, pre_ln=True),
    "mamba": dict(d_model=64, d_state=16, expand=2, num_layers=2),
    "mingru": dict(d_model=64, d_ff=192, num_layers=2),
    "minlstm": dict(d_model=64, d_ff=160, num_layers=2),
    "slstm": dict(d_model=64, num_heads=4, d_ff=64, num_layers=2),
}

SEQ2SEQ_SIZES = {
    "seq2seq_rnn": dict(hidden_size=128, embed_dim=32, cell="gru"),
    "seq2seq_attention": dict(hidden_size=128, embed_dim=32, cell="gru"),
    "transformer_seq2seq": dict(d_model=64, num_heads=4, d_ff=256, num_layers=2, pre_ln=True),
}

# Learning rate per registry model (variants use theirs): the lowest eval MSE after 300 steps on
# adding at T=50 of lrs 3e-4..1e-2, docs/results/lr_sweep (one seed). The LRU's is its peak rate.
# mamba, mingru, minlstm and slstm were added after that sweep: their 3e-3 is a common Adam rate for
# models of this size, not a measured optimum.
# The residual-block variants take the rate of the other residual-block models (minGRU's), keyed by
# the variant word; also not a measured optimum.
MODEL_LR = {"rnn": 3e-4, "lstm": 3e-3, "gru": 1e-2, "lru": 1e-2, "transformer": 3e-3,
            "mamba": 3e-3, "mingru": 3e-3, "minlstm": 3e-3, "slstm": 3e-3,
            "rnn_block": 3e-3, "lstm_block": 3e-3, "gru_block": 3e-3, "irnn_block": 3e-3}

# variant -> (registry model, fields); chrono_max of CHRONO_VARIANTS is set from the task.
IRNN = dict(activation="relu", recurrent_init="identity", input_std=1e-3)
MODEL_VARIANTS = {
    "transformer_window0": ("transformer", dict(window=0)),
    "lstm_chrono": ("lstm", {}),
    "gru_carry": ("gru", {}),
    "transformer_window1": ("transformer", dict(window=1)),
    "transformer_window4": ("transformer", dict(window=4)),
    "transformer_window16": ("transformer", dict(window=16)),
    "transformer_uniform": ("transformer", dict(attention="uniform", causal=True)),
    "transformer_rope": ("transformer", dict(positional="rope")),
    "transformer_nope": ("transformer", dict(positional="none")),
    "irnn": ("rnn", IRNN),
    "rnn_block": ("rnn", dict(block="residual", hidden_size=64, d_ff=192, num_layers=2)),
    "lstm_block": ("lstm", dict(block="residual", hidden_size=48, d_ff=152, num_layers=2)),
    "gru_block": ("gru", dict(block="residual", hidden_size=52, d_ff=156, num_layers=2)),
    "irnn_block": ("rnn", dict(IRNN, block="residual", hidden_size=64, d_ff=192, num_layers=2)),
    # Mamba's time-invariant ablation (Gu & Dao 2023, Table 1's S4 rows): dt, B, C learned
    # parameters broadcast over time (models/mamba.py selective=False)
    "mamba_lti": ("mamba", dict(selective=False)),
}
CHRONO_VARIANTS = ("lstm_chrono", "gru_carry")

# The Transformer's schedule (Vaswani et al. 2017): linear warmup, then the rate falls as 1/sqrt(step)
# from its peak MODEL_LR["transformer"]; 100 warmup steps instead of the paper's 4000, which were
# for 100k-step runs. Against the constant rate it cut the sequences to solve adding at T=200 from
# 50.7k to 28.7k (median of seeds 0-2) and at T=50 from 13.6k to 12.4k, and a 1e-3 or 1e-2 peak did
# no better at T=50 (docs/results/transformer_schedule): the constant rate's noise kept the last
# sequences outside the criterion for hundreds of steps at T=200.
TRANSFORMER_OPTIMIZER = dict(schedule="rsqrt", warmup_steps=100)

# The LRU's optimiser (Orvieto et al. 2023; minimal-LRU's defaults): see the module docstring.
# Its warmup + cosine has a FIXED length, so a run's learning rate at step s does not depend on its
# cap (num_train_steps) and the learning cost's solve time does not move with the cap. The length
# is adding's learning-cost budget, 1156 steps (Hochreiter & Schmidhuber's 74k sequences at batch
# 64), with minimal-LRU's 10% warmup of it (115 steps): exactly what the cap-dependent recipe gave
# the recorded adding learning-cost runs, so those keep their meaning. A run longer than 1156 steps
# (listops' 5000, the struggles caps) stretches the cosine to its own length (optim.schedule_length):
# its rate then depends on its cap, but no step trains at rate 0.
# Before issue 26 the recipe was cap-dependent: warmup int(0.1 * num_train_steps) steps, cosine to
# 0 at num_train_steps. The LRU runs recorded with it: docs/results/learning_cost, learning_cost_cpu
# and long_slice_h200 (adding cap 1156: the same schedule as today's; copy cap 800: warmup 80,
# cosine over 800), lr_sweep (300 steps), lru_copy_t100 (500 steps), struggles (300 and 1000
# steps), compare_small (copy, 200 steps). Rerun one of them as recorded with
# --config.optimizer.warmup_steps=<0.1 x steps> --config.optimizer.schedule_steps=<steps>.
LRU_WARMUP_STEPS, LRU_SCHEDULE_STEPS = 115, 1156
LRU_OPTIMIZER = dict(name="adamw", weight_decay=0.05, recurrent_lr_scale=0.5,
                     schedule="warmup_cosine", warmup_steps=LRU_WARMUP_STEPS,
                     schedule_steps=LRU_SCHEDULE_STEPS)

# Each model's tuned optimiser, from a recorded tuning (configs/compare.py:tuning, its report's
# "TUNED" line): {model word: optimizer fields (learning_rate, schedule, warmup_steps,
# schedule_steps)}, applied by `make` over MODEL_LR and the schedules above (a variant without an
# entry uses its registry model's; an explicit `lr` still wins). No tuning has been recorded yet, so
# it is empty and every model keeps today's MODEL_LR and schedule (lr_sweep, transformer_schedule).
TUNED = {}

CLASSIFICATION_TASKS = ("temporal_order", "digits", "listops")


def resolve_model(word: str):
  """A config argument's model word -> (registry name, variant fields); ValueError if unknown."""
  if word in MODEL_VARIANTS:
    name, fields = MODEL_VARIANTS[word]
    return name, dict(fields)
  if word in models.MODELS:
    return word, {}
  raise ValueError(f"unknown model {word!r}; valid names: {', '.join(models.MODELS)}; "
                   f"variants: {', '.join(MODEL_VARIANTS)}")


def distance_to_bridge(config):
  """The longest input-to-output distance of config.task, as a reference to its fields.

  adding: seq_len (the first marker can be at step 0, the readout is at step T - 1), and
  seq_len + seq_len // 10 for its hochreiter1997 variant (lengths up to T + T // 10); copy:
  seq_len + num_copy (symbol i at step i is output at step T + K + i); other tasks: seq_len, the
  input length, an upper bound on any distance.
  """
  task = config.task
  if task.get("seq_len") is None:
    raise ValueError(f"task {task.name!r} has no seq_len: chrono variants need a length")
  distance = task.get_ref("seq_len")
  if task.name == "adding" and task.get("variant") == "hochreiter1997":
    distance = distance + task.get_ref("seq_len") // 10
  if task.name == "copy":
    distance = distance + task.get_ref("num_copy")
  return distance


def task_config(task: str, arg, default_model: str, **task_params):
  """The base config for `task` with the model and overrides named by a config-file argument.

  A key of the argument that names a task parameter (e.g. adding's variant=hochreiter1997) is
  a parameter of the task the config is built with, so what follows from it (the chrono T_max,
  the model's length) is set from it.
  """
  word, overrides = cfg_lib.parse_arg(arg, default_model)
  names = tasks.spec(task, **task_params).params
  task_params.update({key: overrides.pop(key) for key in list(overrides) if key in names})
  model, fields = resolve_model(word)
  config = cfg_lib.base_config(model, task, **task_params)
  config.model_variant = word
  config.model.update({**MODEL_SIZES, **SEQ2SEQ_SIZES}.get(model, {}))
  tokens = model in models.SEQUENCE_MODELS and cfg_lib.task_spec(config).vocab_size is not None
  if tokens and "embed_dim" in config.model:
    config.model.embed_dim = EMBED_DIM  # token inputs (real inputs go to the backbone as they are)
  if model == "transformer" and cfg_lib.task_spec(config).output == "step":
    config.model.causal = True  # per-step outputs: read the sequence in order, like the RNNs
  if model == "lru" and config.task.name in CLASSIFICATION_TASKS:
    config.model.pooling = "mean"  # the LRU paper's pooling for sequence classification
  config.model.update(fields)
  if word in CHRONO_VARIANTS:
    config.model.chrono_max = distance_to_bridge(config)
  return config, overrides


def make(task: str, arg, default_model: str, *, steps: int, batch_size: int = 64, lr: float = None,
         every: int = 250, model_fields: dict = None, **task_params):
  """A complete config: `task` with its parameters, trained `steps` steps with Adam and clipping 1.0
  (the LRU with its paper's AdamW recipe, `LRU_OPTIMIZER`) at the variant's or else the model's
  `MODEL_LR`, or with its recorded tuning (`TUNED`) where there is one, unless `lr` is given.

  `arg` is the config file's argument: a model name or variant and key=value overrides, applied
  last; `model_fields` are the task's own model settings (e.g. adding's pooling='last').
  """
  config, overrides = task_config(task, arg, default_model, **task_params)
  config.num_train_steps = steps
  config.batch_size = batch_size
  config.eval_every = config.checkpoint_every = every
  config.optimizer.learning_rate = lr or MODEL_LR.get(config.model_variant,
                                                      MODEL_LR.get(config.model.name, 1e-3))
  config.optimizer.clip_norm = 1.0
  if config.model.name == "lru":
    config.optimizer.update(LRU_OPTIMIZER)
  if config.model.name == "transformer":
    config.optimizer.update(TRANSFORMER_OPTIMIZER)
  config.optimizer.update(TUNED.get(config.model_variant, TUNED.get(config.model.name, {})))
  if lr:
    config.optimizer.learning_rate = lr
  config.model.update(model_fields or {})
  return cfg_lib.apply_overrides(config, overrides)


def eval_at_multiples(config, factors=(2, 4, 8)):
  """config with eval_lengths = factors x task.seq_len (length generalisation, issue 13)."""
  config.eval_lengths = tuple(int(f * config.task.seq_len) for f in factors)
  return config


def param_count(config) -> int:
  """Trainable parameters of config's model on config's task (shapes only; nothing is computed)."""
  spec = cfg_lib.task_spec(config)
  return models.count_params(cfg_lib.model_config(config, spec), input_dim=spec.input_dim)
