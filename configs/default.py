"""The default job: the small version of the main comparison (configs/compare.py:small).

  python -m experiments.main              # = --config=configs/default.py --workdir=runs/default

The learning cost of adding (T=20, 40: rnn, lstm, transformer and the window=0 ablation, cap 500
steps) and copy (T=10: lstm, lru, transformer, cap 300 steps), 2 seeds trained as one vmapped
program, every run stopping at its task's criterion; gradient flow with the last-step readout at
T=20; length generalisation at 2x and 4x; a tanh RNN trained by SGD with and without clipping; RNN
encoder-decoders with and without attention on `reverse`; attention maps. It writes
runs/default/report.md. Every part resumes.
Time: 9.5 min on 2 otherwise idle CPU cores (5 min 51 s for the learning-cost runs, 3 min 41 s for
the rest; measured with the compilation cache warm from earlier configs, not from a fresh clone).
Expected (seeds 0, 1; recorded in docs/results/compare_small): adding — the tanh RNN
and the window=0 Transformer censored at T=20 (1331-2192 of 2560 held-out sequences wrong), the LSTM
solved at T=20 (19.8k and 26.2k training sequences) but censored at T=40, the Transformer solved at
both (18.0k / 12.4k at T=20, 9.3k at T=40); copy T=10 — the LRU solved in 3.2k sequences, the
Transformer in 7.0k, the LSTM at chance; the window=0 Transformer passes no gradient to any step but
its last; RNNsearch reverses every length (exact match 1.000) while the RNN encoder-decoder gets
0.535.
"""
from configs import compare


def get_config(arg=None):
  del arg
  return compare.get_config("small")
