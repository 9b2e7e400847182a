"""The main comparison: RNN vs LSTM/GRU vs LRU vs Transformer on long-range tasks, with gradient flow.

  python -m experiments.main --config=configs/compare.py:small --workdir=runs/compare_small
  python -m experiments.main --config=configs/compare.py:medium --workdir=runs/compare_medium
  python -m experiments.main --config=configs/compare.py:full --workdir=runs/compare_full
  python -m experiments.main --config=configs/compare.py:learning_cost --workdir=runs/learning_cost
  python -m experiments.main --config=configs/compare.py:learning_cost_cpu --workdir=runs/learning_cost_cpu
  python -m experiments.main --config=configs/compare.py:struggles --workdir=runs/struggles

Every point (model x task x length x seed, the clipping runs, the seq2seq runs) is an ordinary run
in its own workdir under the comparison's, so the comparison resumes; at the end report.md,
results.json and grad_norms.json are written there.
  small   what `python -m experiments.main` runs (configs/default.py, whose docstring gives the
          measured time, 3 min 6 s from an empty compilation cache, 2 min 3 s with a warm one, and
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
          7 models (rnn, lstm, lstm_chrono, gru, lru, transformer, transformer_window0), 3 seeds,
          the geometric grid adding T=25..1000 (cap 1156 steps = 73,984 sequences, Hochreiter &
          Schmidhuber's budget at T=100) and copy T=10..500 (cap 800 steps): for launch/ (TPU) or a
          GPU; on 2 CPU cores adding T=200 alone took over two hours. Recorded on CPU up to adding
          T=200 and copy T=100 (docs/results/learning_cost, across three sessions, the Transformer
          then at a constant rate).
  learning_cost_cpu  the same part at the lengths that fit 90 minutes on 2 CPU cores: adding
          T=25, 50, 100 and copy T=10..100 (adding_h97 T=25, 50, 100 joined it after this
          recording, and is not in the time below). Recorded (docs/results/learning_cost_cpu): 76 min on 2
          CPU cores from an empty compilation cache; median sequences to solve adding from T=25 to
          100: GRU 9.3k -> 19.8k, Transformer 12.4k -> 23.8k, chrono LSTM 23.8k -> 41.9k, LSTM
          28.7k -> 61.3k (2 of 3 seeds at T=100), LRU 31.6k -> 50.7k; the tanh RNN and window=0
          censored at T=25; on copy only the LRU (3.2k -> 10.2k) and the Transformer (9.3k ->
          14.9k) solve, the others are censored at T=10.
  long_slice  adding at T=200 and 500, seeds 3-5, transformer / transformer_window0 / lstm_chrono /
          lru, cap 1156 steps: the comparison's long-length slice for an accelerator
          (`python -m benchmarks.device_check` runs it; results in BENCHMARKS.md's GPU section).
          Its Transformer at T=500 alone, seeds 0-2, ran on 2 CPU cores in 55 min: median 46,080
          sequences (docs/results/transformer_t500 has the command).
  struggles  only the "where attention struggles" part (attnlab/comparison/state_tracking.py, issue 13):
          rnn, lstm, gru, lru, transformer, mamba, mingru, minlstm, slstm trained on parity at T=32 and
          flip-flop at T=64 (300 steps each, seed 0) and evaluated at 1, 2, 4, 8 x T on 256 test
          sequences per length; MQAR at T=64 with 4 and 16 pairs (1000 steps; mamba last), each
          model's state or KV-cache bytes beside it. Recorded in docs/results/struggles: parity and
          flip-flop ~50 min for the nine models, MQAR ~60 min without mamba and ~10 min for mamba's
          two points (blocked S6), on 2 shared CPU cores. Result:
          parity is learned and kept with no error at 8x only by lstm, gru and slstm; transformer,
          lru, mamba, mingru, minlstm and rnn end at 0.50-0.59 at 8x; on flip-flop every recurrence
          keeps >= 0.995 at 8x while the transformer falls to 0.57. medium runs the part at parity
          T=32, flip-flop T=128, MQAR P=4..32 at T=128, 1000-1500 steps, 3 seeds (not measured;
          hours); full at the papers' flip-flop T=512 (days on CPU). The default job (small) does not
          carry it: one mamba point alone takes about the default job's whole 5-minute budget.
`comparison.parts` picks the parts `attnlab.comparison.run` runs (small: see above; medium/full: the
first five and struggles); `--config.comparison.workers=N` trains up to N runs at a time in threads
(attnlab/comparison/common.py: no gain on the default job on 2 cores, so off by default).
Clipping (medium and full; these base settings measured with seeds 0 and 1, ~6 min on 2 shared CPU
cores): a tanh RNN on adding T=30, plain SGD at learning rate 0.1, 600 steps. Without clipping every
run diverges at r=1.2 and r=1.5 (loss above 10x its start by step 2-3, non-finite from step 16-23,
max ||g|| inf); with tau=1 (median ||g|| before clipping 2.0-3.2, after it 1.0) none diverges: at
r=1.2 eval MSE 0.100 and 0.095 against the baseline 0.167, at r=1.5 0.156 (finite, not clearly below
it).
medium trains 1500 steps over 3 seeds: there the clipped r=1.5 runs of seeds 0 and 1 reach eval MSE
0.058 and 0.060 (measured alone, 4 min); full trains 2000 steps (not measured).
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


ARGS = ("small", "medium", "full", "learning_cost", "learning_cost_cpu", "long_slice", "struggles")
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
  if arg == "struggles":
    return _struggles(c)
  if arg == "small":
    # The default job, sized for 5 minutes on 2 CPU cores: sequences to solve adding at two lengths
    # with 2 seeds in one program, the window=0 ablation beside the Transformer, the LRU and the
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
    c.struggles = _struggles_part(lengths={"parity": 32, "flip_flop": 128},
                                  steps={"parity": 1000, "flip_flop": 1500, "mqar": 1500},
                                  seeds=(0, 1, 2), mqar={"pairs": (4, 8, 16, 32), "seq_len": 128},
                                  final_eval_sequences=1024)
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
    c.struggles = _struggles_part(lengths={"parity": 64, "flip_flop": 512},
                                  steps={"parity": 10000, "flip_flop": 10000, "mqar": 10000},
                                  seeds=(0, 1, 2), mqar={"pairs": (4, 8, 16, 32, 64), "seq_len": 256},
                                  final_eval_sequences=2048)
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
  copy, 3 seeds, each run stopping when solved (cap c.learning_cost.steps): the whole grid, or (cpu)
  the lengths that fit 90 minutes on 2 CPU cores (before adding_h97 joined it)."""
  c.parts = ("learning_cost", "gradients", "generalisation")
  c.tasks, c.seeds = ("adding", "copy"), (0, 1, 2)
  c.learning_cost = ml_collections.ConfigDict(dict(
      tasks=("adding", HOCHREITER_TASK, "copy"), models=LEARNING_COST_MODELS, seeds=(0, 1, 2),
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
  c.learning_cost.update(tasks=("adding",), seeds=(3, 4, 5),
                         models=("transformer", "transformer_window0", "lstm_chrono", "lru"))
  c.learning_cost.lengths = {"adding": (200, 500)}
  c.learning_cost.steps = {"adding": 1156}
  config = ml_collections.ConfigDict()
  config.comparison = c
  return config


def _struggles_part(**fields):
  """c.struggles (attnlab/comparison/state_tracking.py): every model of STRUGGLES_MODELS on parity and
  flip-flop at one T, evaluated at 1, 2, 4, 8 x T, and on MQAR against the number of pairs."""
  return ml_collections.ConfigDict(dict(dict(
      models=STRUGGLES_MODELS, factors=(1, 2, 4, 8),
      run_overrides={"eval_every": 100, "checkpoint_every": 100}), **fields))


def _struggles(c):
  """Only the "where attention struggles" part, CPU-sized: parity at T=32 and flip-flop at T=64
  evaluated at 1-8 x T (300 steps), MQAR at T=64 with 4 and 16 pairs (1000 steps: at 300 the
  Transformer recalls 0.26 of the queries with 4 pairs); seed 0."""
  c.parts = ("struggles",)
  c.struggles = _struggles_part(lengths={"parity": 32, "flip_flop": 64},
                                steps={"parity": 300, "flip_flop": 300, "mqar": 1000}, seeds=(0,),
                                mqar={"pairs": (4, 16), "seq_len": 64, "models": MQAR_CPU_ORDER},
                                final_eval_sequences=256)
  config = ml_collections.ConfigDict()
  config.comparison = c
  return config
