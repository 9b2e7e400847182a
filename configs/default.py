"""The default job: the small version of the main comparison (configs/compare.py:small).

  python -m experiments.main              # = --config=configs/default.py --workdir=runs/default

The learning cost of adding (T=20, 40: rnn, lstm, transformer and the window=0 ablation, cap 400
steps) and copy (T=10: lstm, lru, transformer, cap 200 steps), 2 seeds trained as one vmapped
program, every run stopping at its task's criterion; gradient flow with the last-step readout at
T=20; length generalisation at 2x and 4x; RNN encoder-decoders with and without attention on
`reverse`; attention maps. It writes runs/default/report.md. Every part resumes. (The clipping
experiment is in compare.py:medium and full.)
Time on 2 otherwise idle CPU cores (2026-11-28, docs/results/compare_small): 5 min 22 s with a warm
compilation cache (any run after the first on a machine) -- 22 s over the 5-minute budget since the
Transformer took Vaswani's schedule, with which it solves these short lengths later; 4 min 54 s with
the constant-rate Transformer, which took 6 min 48 s from an empty cache (the first run on a machine:
~2 min of XLA compilation of ~270 programs). Of the constant-rate warm run: 3 min 24 s for the nine
trained learning-cost points (16-30 s each, mostly training steps: 15-25 ms a step for two vmapped
seeds of these 67k-parameter models at T=20), 37 s seq2seq, ~50 s imports, gradient flow,
generalisation, attention maps and report.
Expected (seeds 0, 1; recorded in docs/results/compare_small): adding — the tanh RNN and the
window=0 Transformer censored at T=20 (1,370-2,178 of 2,560 held-out sequences wrong), the LSTM
solved at T=20 (16.4k and 21.7k training sequences) and censored at T=40 on both seeds (45 and 154
wrong), the Transformer solved at both (12.4k / 16.4k at T=20, 16.4k / 16.4k at T=40); copy T=10 —
the LRU solved in 3.2k sequences, the Transformer in 9.3k / 10.2k, the LSTM at chance; the window=0
Transformer passes no gradient to any step but its last; RNNsearch reverses every length (exact
match 1.000) while the RNN encoder-decoder gets 0.547.
"""
from configs import compare


def get_config(arg=None):
  del arg
  return compare.get_config("small")
