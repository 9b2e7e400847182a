"""The default job: the small version of the main comparison (configs/compare.py:small).

  attnlab train        # = attnlab train --config=default --workdir=runs/default

The learning cost of adding (T=20, 40: rnn, lstm, transformer and the window=0 ablation, cap 350
steps) and copy (T=10: lstm, lru, transformer, cap 200 steps), 2 seeds trained as one program, every
run stopping at its task's criterion; gradient flow with the last-step readout at T=20; length
generalisation at 2x and 4x; RNN encoder-decoders with and without attention on `reverse` (250
steps); attention maps. It writes runs/default/report.md. Every part resumes. (The clipping
experiment is in compare.py:medium and full.)
Time on 2 CPU cores (2026-12-07, docs/results/compare_small): 4 min 2 s from an empty compilation
cache (the first run on a machine); 2 min 21 s with a warm cache (any later run); most of a warm
run is the nine learning-cost points' training steps. It is a 2-seed preview: its report ranks no
models.
Expected (seeds 0, 1; recorded in docs/results/compare_small): adding — the tanh RNN and the
window=0 Transformer censored at T=20 (1,541-2,444 of 2,560 held-out sequences wrong), the LSTM
solved at T=20 on one seed (16,384 training sequences) and narrowly not on the other (64 wrong), so
not trained at T=40, the Transformer solved at both (11,264 / 14,912 at T=20, 14,912 / 13,568 at
T=40); copy T=10 — the LRU solved in 2,560 / 3,200 sequences, the Transformer in 9,344 / 10,240, the
LSTM at chance; the window=0 Transformer passes no gradient to any step but its last; RNNsearch
reverses 0.986 of held-out sequences exactly, the RNN encoder-decoder 0.506.
"""
from attnlab.configs import compare


def get_config(arg=None):
  del arg
  return compare.get_config("small")
