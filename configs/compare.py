"""The main comparison: RNN vs LSTM/GRU vs LRU vs Transformer on long-range tasks, with gradient flow.

  attnlab train --config=compare:small --workdir=runs/compare_small
  attnlab train --config=compare:medium --workdir=runs/compare_medium
  attnlab train --config=compare:full --workdir=runs/compare_full
  attnlab train --config=compare:learning_cost --workdir=runs/learning_cost
  attnlab train --config=compare:learning_cost_cpu --workdir=runs/learning_cost_cpu
  attnlab train --config=compare:struggles --workdir=runs/struggles

Every point (model x task x length x seed, the clipping runs, the seq2seq runs) is an ordinary run
in its own workdir under the comparison's, so the comparison resumes; at the end report.md,
results.json and grad_norms.json are written there.
  small   what `attnlab train` runs (configs/default.py, whose docstring gives the
          measured time, 4 min 2 s from an empty compilation cache, 2 min 21 s with a warm one, and
          results): the learning cost of adding at T=20, 40 and copy at T=10 with 2 seeds in one
          program, window=0 ablation, gradient flow, generalisation, RNN vs RNNsearch, attention maps.
  medium  + gru; adding T=50..200, copy T=20..100, 3 seeds; the run behind
          docs/results/compare_medium: ~1.5-2 hours on 2 CPU cores (1 h 57 min measured while the
          cores were shared, before the clipping part grew to 12 SGD runs of 1500 steps). Result:
          the Transformer solves every length of both tasks; the GRU solves adding at T=50..200;
          the LSTM learns it at T=50 and 100 (MSE 0.005, 0.017) and the RNN only at T=50 (0.025);
          on copy the Transformer copies everything, the LRU 0.42-0.50 of the symbols, the GRU
          0.15-0.18 and the LSTM and RNN 0.12-0.16 (chance 0.125); RNNsearch reverses every length,
          the RNN encoder-decoder fails from length 14. Recorded with the sizes and recipes of
          that time (see docs/results/compare_medium), not today's.
  full    + selective copy and associative recall, + transformer_window0 (the Transformer with no
          attention between positions), lengths up to 1000, 3 seeds, thousands of steps:
          days on 2 CPU cores; meant for a GPU or TPU (launch/).
  learning_cost  only the learning-cost part (training sequences to solve adding and copy against T,
          every model stopping when solved; see attnlab/comparison/learning_cost.py; adding twice:
          today's variant, and adding_h97, Hochreiter & Schmidhuber 1997's sequences, tolerance and
          stopping rule, configs/adding_h97.py, beside their numbers), the gradient
          flow of its runs at the shortest adding length, and length generalisation (2x, 4x).
          7 models (rnn, lstm, lstm_chrono, gru, lru, transformer, transformer_window0), 10 seeds
          per point drawn from (model, task, T, i) and a data stream per (task, T) (num_seeds;
          the recordings below predate it: 3 seeds, 0-2, reused at every T),
          the geometric grid adding T=25..1000 (cap 1156 steps = 73,984 sequences, Hochreiter &
          Schmidhuber's budget at T=100) and copy T=10..500 (cap 800 steps): for launch/ (TPU) or a
          GPU; on 2 CPU cores adding T=200 alone took over two hours. Recorded on CPU up to adding
          T=200 and copy T=100 (docs/results/learning_cost, across three sessions, the Transformer
          then at a constant rate).
  learning_cost_cpu  the same part at the lengths that fit 90 minutes on 2 CPU cores with 3 seeds:
          adding T=25, 50, 100 and copy T=10..100 (now 10 seeds per point and adding_h97 T=25, 50,
          100 beside them, not timed on CPU). Recorded with seeds 0-2 at every T, before adding_h97
          (docs/results/learning_cost_cpu): 76 min on 2
          CPU cores from an empty compilation cache; median sequences to solve adding from T=25 to
          100: GRU 9.3k -> 19.8k, Transformer 12.4k -> 23.8k, chrono LSTM 23.8k -> 41.9k, LSTM
          28.7k -> 61.3k (2 of 3 seeds at T=100), LRU 31.6k -> 50.7k; the tanh RNN and window=0
          censored at T=25; on copy only the LRU (3.2k -> 10.2k) and the Transformer (9.3k ->
          14.9k) solve, the others are censored at T=10.
  long_slice  adding at T=200 and 500, seeds 3-5 at both T (a timing slice, not a ranking),
          transformer / transformer_window0 / lstm_chrono / lru, cap 1156 steps: the comparison's
          long-length slice for an accelerator
          (`python -m benchmarks.device_check` runs it; results in BENCHMARKS.md's GPU section).
          Its Transformer at T=500 alone, seeds 0-2, ran on 2 CPU cores in 55 min: median 46,080
          sequences (docs/results/transformer_t500 has the command).
  struggles  only the "where attention struggles" part (attnlab/comparison/state_tracking.py, issues
          13 and 26) at the papers' protocols: rnn, lstm, gru, lru, transformer, mamba, mingru,
          minlstm, slstm, 3 seeds, every run trained until it meets its task's criterion (accuracy
          >= 0.99, geometric eval schedule) or to its cap (STRUGGLES_CAPS: 10-20k steps; censored
          "> cap" in results and report). Parity as Delétang et al. 2023 (one label per string,
          lengths uniform in 1..40, tested on each of 41, 50, 100, 200, 300, 400, 500 on its own);
          flip-flop as Liu et al. 2023 (FFL(0.8) at T=512, tested on the sparse FFL(0.98) and dense
          FFL(0.1) tails, exact wrong reads); MQAR at T=128, P=8 and 32, at widths 16-128 against
          each model's state or KV-cache bytes (Zoology's figure); mamba against mamba_lti (dt, B, C
          not input-dependent) on selective copying (T=256, 16 symbols of 16), Mamba's Table 1.
          For an accelerator (not measured; days on 2 CPU cores). struggles_tiny: the same code
          paths at test size (tests/test_comparison.py). docs/results/struggles was recorded with
          the earlier protocol (300 steps, seed 0, T=32/64, multiples of T): parity learned and kept
          at 8x only by lstm, gru and slstm; on flip-flop every recurrence kept >= 0.995 at 8x and
          the transformer fell to 0.57 -- under-trained, not the papers' settings. medium runs the
          part with flip-flop at T=128, full as struggles. The default job (small) does not carry it.
`comparison.parts` picks the parts `attnlab.comparison.run` runs (small: see above; medium/full: the
first five and struggles); `--config.comparison.workers=N` trains up to N runs at a time in threads
(attnlab/comparison/common.py: no gain on the default job on 2 cores, so off by default).
Clipping (medium and full): a tanh RNN on adding T=30, plain SGD at learning rate 0.1, 600 steps,
spectral radius r=1.2 and 1.5, without clipping and with tau=1; medium trains 1500 steps over 3
seeds, full 2000. No run with these SGD settings is recorded (docs/results/compare_medium's clipping
part predates them: Adam, 200 steps).
The recorded times and results above (medium, and configs/default.py's) predate configs/common.py's
matched-size recipes (then: RNN/LSTM/GRU H=128, a 2-layer LRU with max_phase 0.314, a d_ff=256
Transformer, adding read out by each model's own summary); rerun to update them.
Expected: the tanh RNN stays at the baseline beyond a few tens of steps and its gradient norm falls
exponentially with distance; LSTM/GRU decay far slower and solve the shorter lengths; the
Transformer's gradient norm is flat in distance and it solves every length it fits; seq2seq without
attention degrades with source length, RNNsearch does not.
"""
import os

import ml_collections

HERE = os.path.dirname(os.path.abspath(__file__))
TASKS = ("adding", "copy", "selective_copy", "associative_recall", "reverse", "sort", "parity",
         "flip_flop", "mqar")
# The learning-cost task of adding as Hochreiter & Schmidhuber 1997 ran it (configs/adding_h97.py:
# their sequences, tolerance and stopping rule), beside today's adding; report.py's column of their
# numbers stands beside it.
HOCHREITER_TASK = "adding_h97"


ARGS = ("small", "medium", "full", "learning_cost", "learning_cost_cpu", "long_slice", "struggles",
        "struggles_tiny", "tuning", "gradient_flow")
# Models of the learning-cost comparison; the variants are those of configs/common.py (contract item 4).
SMALL_MODELS = ("rnn", "lstm", "lru", "transformer", "transformer_window0")  # across its tasks
LEARNING_COST_MODELS = ("transformer", "transformer_window0", "lstm", "lstm_chrono", "rnn", "gru", "lru")
# Models of the "where attention struggles" part: the seed's five and the modern recurrences.
STRUGGLES_MODELS = ("rnn", "lstm", "gru", "lru", "transformer", "mamba", "mingru", "minlstm", "slstm")
# MQAR's models on CPU: mamba last (its 1000 steps took ~5 min a point on 2 CPU cores with the blocked
# S6, ~17 min with the sequential one)
MQAR_CPU_ORDER = ("rnn", "lstm", "gru", "lru", "transformer", "mingru", "minlstm", "slstm", "mamba")


def get_config(arg="small"):
  arg = arg or "small"
  if arg not in ARGS:
    raise ValueError(f"configs/compare.py:{arg}; valid arguments: {', '.join(ARGS)}")
  c = ml_collections.ConfigDict()
  c.config_name = f"configs/compare.py:{arg}"
  c.task_configs = {t: os.path.join(HERE, f"{t}.py") for t in TASKS + (HOCHREITER_TASK,)}
  c.length_fields = {"associative_recall": "task.num_pairs"}
  c.gradient_task, c.attention_tasks = "adding", ("copy", "associative_recall")
  # Plain SGD as Pascanu et al. 2013 (Adam's per-parameter scaling absorbs the spikes clipping is for),
  # at a learning rate where the unclipped tanh RNN with r > 1 diverges; tau = 1 is 0.5x the median
  # norm of the clipped runs (Pascanu: 0.5-10x the average norm).
  c.clipping = ml_collections.ConfigDict(dict(
      task="adding", seq_len=30, steps=600, radii=(1.2, 1.5), clip_norms=(0.0, 1.0), seeds=(0, 1),
      optimizer="sgd", momentum=0.0, learning_rate=0.1))
  c.seq2seq = ml_collections.ConfigDict(dict(task="reverse", steps=400, max_len=12, num_test=512,
                                             models=("seq2seq_rnn", "seq2seq_attention",
                                                     "transformer_seq2seq")))
  c.parts = ("long_range", "gradients", "clipping", "seq2seq", "attention")
  c.workers = 1  # trainings at a time, in threads (attnlab/comparison/common.py training_slots)
  c.generalisation = ml_collections.ConfigDict(dict(tasks=("adding", "copy"), factors=(1, 2, 4),
                                                    num_sequences=256, batch_size=64))
  if arg in ("learning_cost", "learning_cost_cpu"):
    return _learning_cost(c, cpu=arg == "learning_cost_cpu")
  if arg == "long_slice":
    return _long_slice(_learning_cost(c).comparison)
  if arg in ("struggles", "struggles_tiny"):
    return _struggles(c, tiny=arg == "struggles_tiny")
  if arg == "tuning":
    return _tuning(c)
  if arg == "gradient_flow":
    return gradient_flow_config()
  if arg == "small":
    # The default job, sized for 5 minutes on 2 CPU cores: sequences to solve adding at two lengths
    # with 2 seeds in one program (seeds 0, 1 at every T: a preview, too few seeds to rank models), the window=0 ablation beside the Transformer, the LRU and the
    # Transformer copying, gradient flow with the last-step readout and seq2seq. Adding's cap is
    # 350 steps (the LSTM's slower seed solves T=20 at 339). Clipping (~25 s more) is left to
    # medium and full: add it with --config.comparison.parts="(..., 'clipping')".
    c.parts = ("learning_cost", "gradients", "generalisation", "seq2seq", "attention")
    c.tasks, c.models, c.seeds = ("adding", "copy"), SMALL_MODELS, (0, 1)
    c.learning_cost = ml_collections.ConfigDict(dict(
        tasks=("adding", "copy"), seeds=(0, 1),
        models={"adding": ("rnn", "lstm", "transformer", "transformer_window0"),
                "copy": ("lstm", "lru", "transformer")},
        lengths={"adding": (20, 40), "copy": (10,)}, steps={"adding": 350, "copy": 200},
        run_overrides={"eval_every": 10, "checkpoint_every": 100}))
    c.gradient_task, c.gradient_length = "adding", 20
    c.generalisation.update(num_sequences=128)
    c.clipping.update(radii=(1.2,), steps=200)
    # RNN encoder-decoder against RNNsearch (Bahdanau et al.): the bottleneck attention removes;
    # the Transformer seq2seq (40 s more) is left to medium and full.
    c.seq2seq.update(steps=250, models=("seq2seq_rnn", "seq2seq_attention"))
  elif arg == "medium":
    c.tasks, c.models, c.seeds = ("adding", "copy"), ("rnn", "lstm", "gru", "lru", "transformer"), (0, 1, 2)
    c.lengths = {"adding": (50, 100, 200), "copy": (20, 50, 100)}
    c.steps = {"adding": 800, "copy": 500}
    c.gradient_length = 100
    c.clipping.update(seeds=(0, 1, 2), steps=1500)
    c.seq2seq.update(steps=800, max_len=20)
    c.parts = c.parts + ("struggles",)
    c.struggles = _struggles_part(flip_flop_len=128)
  else:
    c.tasks = ("adding", "copy", "selective_copy", "associative_recall")
    c.models, c.seeds = ("rnn", "lstm", "gru", "lru", "transformer", "transformer_window0"), (0, 1, 2)
    c.lengths = {"adding": (100, 200, 500, 1000), "copy": (100, 200, 500, 1000),
                 "selective_copy": (128, 256, 512, 1024), "associative_recall": (8, 32, 128, 499)}
    c.steps = {"adding": 10000, "copy": 10000, "selective_copy": 10000, "associative_recall": 10000}
    c.gradient_length = 1000
    c.clipping.update(seeds=(0, 1, 2), steps=2000)
    c.seq2seq.update(steps=5000, max_len=40)
    c.parts = c.parts + ("struggles",)
    c.struggles = _struggles_part()
  config = ml_collections.ConfigDict()
  config.comparison = c
  return config


# The learning-cost grid (geometric in T), and the part of it that fits 90 minutes on 2 CPU cores.
LEARNING_COST_LENGTHS = {"adding": (25, 50, 100, 200, 500, 1000),
                         HOCHREITER_TASK: (25, 50, 100, 200, 500, 1000),
                         "copy": (10, 20, 50, 100, 200, 500)}
LEARNING_COST_CPU_LENGTHS = {"adding": (25, 50, 100), HOCHREITER_TASK: (25, 50, 100),
                             "copy": (10, 20, 50, 100)}


def _learning_cost(c, cpu: bool = False):
  """Learning cost on adding, adding_h97 (Hochreiter & Schmidhuber's protocol and stopping rule) and
  copy, each run stopping when solved (cap c.learning_cost.steps): the whole grid, or (cpu) the
  lengths that fit 90 minutes on 2 CPU cores with 3 seeds (before adding_h97 joined it). num_seeds=10
  seeds per point, each point its own (attnlab/comparison/learning_cost.py): the fewest the report
  ranks models on."""
  c.parts = ("learning_cost", "gradients", "generalisation")
  c.tasks, c.seeds = ("adding", "copy"), (0, 1, 2)
  c.learning_cost = ml_collections.ConfigDict(dict(
      tasks=("adding", HOCHREITER_TASK, "copy"), models=LEARNING_COST_MODELS, num_seeds=10,
      lengths=LEARNING_COST_CPU_LENGTHS if cpu else LEARNING_COST_LENGTHS,
      # adding's cap: Hochreiter & Schmidhuber's 74,000 training sequences at T=100, in batches of 64
      steps={"adding": 1156, HOCHREITER_TASK: 1156, "copy": 800},
      run_overrides={"eval_every": 10, "checkpoint_every": 250}))
  c.gradient_task, c.gradient_length = "adding", 25  # every model is trained at the shortest length
  c.generalisation.update(factors=(1, 2, 4), num_sequences=128)
  config = ml_collections.ConfigDict()
  config.comparison = c
  return config


def _long_slice(c):
  """The learning cost of adding at T=200 and 500 (beyond the CPU grid), on seeds 3-5 that no other
  recorded run used: the Transformer, its window=0 ablation, the chrono-initialised LSTM and the LRU.
  Sized for an accelerator (benchmarks/device_check.py runs it); days on 2 CPU cores."""
  c.parts = ("learning_cost",)
  c.tasks, c.seeds = ("adding",), (3, 4, 5)
  c.learning_cost.update(tasks=("adding",), num_seeds=None, seeds=(3, 4, 5),
                         models=("transformer", "transformer_window0", "lstm_chrono", "lru"))
  c.learning_cost.lengths = {"adding": (200, 500)}
  c.learning_cost.steps = {"adding": 1156}
  config = ml_collections.ConfigDict()
  config.comparison = c
  return config


def _struggles_part(flip_flop_len: int = 512, **fields):
  """c.struggles (attnlab/comparison/state_tracking.py) to the papers' protocols: every model of
  STRUGGLES_MODELS, 3 seeds, each run trained until solved or to its cap (STRUGGLES_CAPS); parity
  on lengths 1..40 tested at each of STRUGGLES_PARITY_TEST_LENGTHS; flip-flop FFL(0.8) at
  flip_flop_len tested on the sparse and dense tails; MQAR against width (state size); mamba
  against mamba_lti on selective copying. `fields` replace top-level keys."""
  parity_tests = {f"len_{n}": {"seq_len": n, "min_len": n} for n in STRUGGLES_PARITY_TEST_LENGTHS}
  flip_flop_tests = {name: {"p_ignore": p} for name, p in STRUGGLES_FLIP_FLOP_TAILS.items()}
  part = dict(
      models=STRUGGLES_MODELS, seeds=STRUGGLES_SEEDS, steps=dict(STRUGGLES_CAPS),
      tasks={"parity": {"train": dict(STRUGGLES_PARITY_TRAIN), "tests": parity_tests},
             "flip_flop": {"train": {"seq_len": flip_flop_len, "p_ignore": 0.8},
                           "tests": flip_flop_tests}},
      mqar={"seq_len": 128, "pairs": (8, 32), "widths": STRUGGLES_MQAR_WIDTHS,
            "models": MQAR_CPU_ORDER, "width_fields": STRUGGLES_WIDTH_FIELDS},
      selective_copy={"models": ("mamba", "mamba_lti"),
                      "task": {"seq_len": 256, "num_copy": 16, "num_symbols": 16}},
      test_sequences=2048, eval_batch_size=128,
      run_overrides={"eval_every": 100, "checkpoint_every": 500})
  part.update(fields)
  return ml_collections.ConfigDict(part)


# The struggles part's protocol. Caps in steps of 64 sequences, far above the 300 steps the first
# recording had (where most runs had not converged); a run not solved by its cap is censored.
STRUGGLES_SEEDS = (0, 1, 2)
STRUGGLES_CAPS = {"parity": 20000, "flip_flop": 20000, "mqar": 10000, "selective_copy": 20000}
# Delétang et al. 2023: one label per string (the parity check), lengths uniform in 1..40; tested
# on each length 41..500 on its own (here a grid of it).
STRUGGLES_PARITY_TRAIN = {"seq_len": 40, "min_len": 1, "variant": "final"}
STRUGGLES_PARITY_TEST_LENGTHS = (41, 50, 100, 200, 300, 400, 500)
# Liu et al. 2023: trained on FFL(0.8), tested on the sparse FFL(0.98) and dense FFL(0.1) tails
STRUGGLES_FLIP_FLOP_TAILS = {"sparse": 0.98, "dense": 0.1}
# Zoology's figure: accuracy against model width, hence state size. Each model's size fields as
# multiples of the width (the others keep configs/common.py's recipe).
STRUGGLES_MQAR_WIDTHS = (16, 32, 64, 128)
STRUGGLES_WIDTH_FIELDS = {
    "rnn": {"hidden_size": 1}, "lstm": {"hidden_size": 1}, "gru": {"hidden_size": 1},
    "lru": {"d_model": 1, "state_size": 1}, "transformer": {"d_model": 1, "d_ff": 2},
    "mamba": {"d_model": 1}, "mingru": {"d_model": 1, "d_ff": 3},
    "minlstm": {"d_model": 1, "d_ff": 2.5}, "slstm": {"d_model": 1, "d_ff": 1}}
# struggles_tiny: the same code paths at test size (tests/test_comparison.py trains it)
STRUGGLES_TINY_SIZES = dict(hidden_size=8, d_model=8, state_size=8, num_heads=2, d_ff=16,
                            num_layers=1, embed_dim=8, d_state=4)


def _struggles(c, tiny: bool = False):
  """Only the "where attention struggles" part at the papers' protocols (_struggles_part): for an
  accelerator (thousands of steps per run). tiny: two models, 3 seeds, a few steps, test sizes."""
  c.parts = ("struggles",)
  c.struggles = _struggles_part()
  if tiny:
    c.struggles.update(
        models=("lstm", "transformer"), test_sequences=16, eval_batch_size=8,
        run_overrides={"batch_size": 8, "num_eval_batches": 1, "eval_every": 2,
                       "checkpoint_every": 2, "log_every": 1, "checkpoint": {"async_save": False}})
    # assigned, not updated: ConfigDict.update merges nested dicts
    c.struggles.steps = {"parity": 3, "flip_flop": 3, "mqar": 2, "selective_copy": 2}
    c.struggles.tasks = {
        "parity": {"train": {"seq_len": 6, "min_len": 1, "variant": "final"},
                   "tests": {"len_7": {"seq_len": 7, "min_len": 7},
                             "len_12": {"seq_len": 12, "min_len": 12}}},
        "flip_flop": {"train": {"seq_len": 8, "p_ignore": 0.8},
                      "tests": {n: {"p_ignore": p} for n, p in STRUGGLES_FLIP_FLOP_TAILS.items()}}}
    c.struggles.mqar = {"seq_len": 12, "pairs": (2,), "widths": (4, 8),
                        "models": ("lstm", "transformer"), "width_fields": STRUGGLES_WIDTH_FIELDS}
    c.struggles.selective_copy = {"models": ("mamba", "mamba_lti"),
                                  "task": {"seq_len": 8, "num_copy": 2, "num_symbols": 4}}
    from attnlab import models  # the tiny sizes of every model that has the field
    c.model_overrides = {m: {k: v for k, v in STRUGGLES_TINY_SIZES.items()
                             if k in models.default_config(m)} for m in models.MODELS}
  config = ml_collections.ConfigDict()
  config.comparison = c
  return config


# The tuning part's grid and schedules (attnlab/comparison/tuning.py), the same for every model: five
# half-decade rates around every MODEL_LR of configs/common.py, and schedules none of which depends on
# the cap: constant; linear warmup then 1/sqrt(step) (the Transformer's recipe, no length); linear
# warmup then cosine over a fixed 1156 steps (the LRU's recipe, configs/common.py LRU_OPTIMIZER).
TUNING_LRS = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2)
TUNING_SCHEDULES = dict(
    constant=dict(schedule="constant", warmup_steps=0, schedule_steps=None),
    rsqrt=dict(schedule="rsqrt", warmup_steps=100, schedule_steps=None),
    cosine=dict(schedule="warmup_cosine", warmup_steps=115, schedule_steps=1156))


def _tuning(c):
  """Every model's learning rate and schedule by one sweep and one pick rule:

    attnlab train --config=compare:tuning --workdir=runs/tuning

  The learning-cost models on adding at T=25 and 100 (the shortest and a middle learning-cost
  length), TUNING_LRS x TUNING_SCHEDULES x seeds 0-2 (vmapped), cap 1156 steps (the learning cost's),
  each run stopping when solved; a choice at the grid's edge adds rates beyond it (up to 3 per
  model). Size: 7 models x 3 schedules x 5 rates x 2 lengths = 210 programs of up to 1156 steps,
  more where grids widen: for an accelerator. Not run yet. Its report ends with the value of
  configs/common.py TUNED the choice gives."""
  c.parts = ("tuning",)
  c.tuning = ml_collections.ConfigDict(dict(
      task="adding", models=LEARNING_COST_MODELS, lengths=(25, 100), seeds=(0, 1, 2),
      lrs=TUNING_LRS, schedules=TUNING_SCHEDULES, steps=1156, max_widenings=3,
      run_overrides={"eval_every": 10, "checkpoint_every": 250}))
  config = ml_collections.ConfigDict()
  config.comparison = c
  return config


# Gradient flow where it shows: the models of the learning-cost comparison on adding at lengths where
# a tanh RNN's gradient has vanished (T=100: ~10 decades at its initial rate, T=500 far beyond).
GRADIENT_FLOW_MODELS = ("rnn", "lstm", "lstm_chrono", "gru", "lru", "transformer")


def gradient_flow_config(lengths=(100, 500), seeds=(0, 1, 2), steps=1156):
  """Gradient flow on adding at `lengths` over `seeds` (attnlab/comparison/gradient_flow.py): every
  model of GRADIENT_FLOW_MODELS trained `steps` steps (the learning-cost cap: 73,984 sequences) at
  each length and seed as the long-range part, logging the decay of ||dL/dx_t|| at initialisation
  and every evaluation (config.log_grad_flow, every 100 steps), then ||dL/dx_t|| at init and
  trained per seed, each seed's fit with its R² and their mean and spread. For an accelerator
  (T=500 in float64 with state Jacobians); not measured yet:

    attnlab train --config=compare:gradient_flow --workdir=runs/grad_flow"""
  c = get_config("learning_cost").comparison
  c.config_name = "configs/compare.py:gradient_flow"
  c.parts = ("long_range", "gradients")
  c.tasks, c.models, c.seeds = ("adding",), GRADIENT_FLOW_MODELS, tuple(seeds)
  c.lengths, c.steps = {"adding": tuple(lengths)}, {"adding": steps}
  c.run_overrides = {"eval_every": 100, "checkpoint_every": 250}
  c.gradient_task, c.gradient_length = "adding", min(lengths)
  c.gradient_flow = ml_collections.ConfigDict(dict(lengths=tuple(lengths), seeds=tuple(seeds),
                                                   num_examples=16))
  config = ml_collections.ConfigDict()
  config.comparison = c
  return config
