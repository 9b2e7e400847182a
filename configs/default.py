"""The default job: the small version of the main comparison (configs/compare.py:small).

  python -m experiments.main              # = --config=configs/default.py --workdir=runs/default

The learning cost of adding (T=20, 40: rnn, lstm, transformer and the window=0 ablation, cap 350
steps) and copy (T=10: lstm, lru, transformer, cap 200 steps), 2 seeds trained as one program, every
run stopping at its task's criterion; gradient flow with the last-step readout at T=20; length
generalisation at 2x and 4x; RNN encoder-decoders with and without attention on `reverse` (250
steps); attention maps. It writes runs/default/report.md. Every part resumes. (The clipping
experiment is in compare.py:medium and full.)
Time on 2 otherwise idle CPU cores (2026-11-28, docs/results/compare_small, a fresh clone and
virtualenv): 3 min 6 s from an empty compilation cache (the first run on a machine, compiling ~270
XLA programs); 2 min 3 s with a warm cache (any later run). An earlier recording on a slower machine
of the same kind took 7 min 5 s and 4 min 38 s; most of a warm run is the nine learning-cost
points' training steps.
Expected (seeds 0, 1; recorded in docs/results/compare_small): adding — the tanh RNN and the
window=0 Transformer censored at T=20 (1,066-2,178 of 2,560 held-out sequences wrong), the LSTM
solved at T=20 (16.4k and 21.7k training sequences) and censored at T=40 on both seeds (476 and 479
wrong), the Transformer solved at both (12.4k / 12.4k at T=20, 14.9k / 12.4k at T=40); copy T=10 —
the LRU solved in 3.2k sequences, the Transformer in 9.3k / 10.2k, the LSTM at chance; the window=0
Transformer passes no gradient to any step but its last; RNNsearch reverses 1.000 of held-out
sequences exactly, the RNN encoder-decoder 0.498.
"""
from configs import compare


def get_config(arg=None):
  del arg
  return compare.get_config("small")
