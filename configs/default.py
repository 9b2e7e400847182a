"""The default job: the small version of the main comparison (configs/compare.py:small).

  python -m experiments.main              # = --config=configs/default.py --workdir=runs/default

The learning cost of adding (T=20, 40: rnn, lstm, transformer and the window=0 ablation, cap 350
steps) and copy (T=10: lstm, lru, transformer, cap 200 steps), 2 seeds trained as one program, every
run stopping at its task's criterion; gradient flow with the last-step readout at T=20; length
generalisation at 2x and 4x; RNN encoder-decoders with and without attention on `reverse` (250
steps); attention maps. It writes runs/default/report.md. Every part resumes. (The clipping
experiment is in compare.py:medium and full.)
Time on 2 otherwise idle CPU cores (2026-11-28, docs/results/compare_small): 4 min 38 s with a warm
compilation cache (any run after the first on a machine); 7 min 5 s from an empty cache (the first
run on a machine: ~2.5 min of XLA compilation of ~270 programs). Of the warm run: 3 min 22 s for the
nine learning-cost points (16-34 s each, mostly training steps: 15-60 ms a step for the two seeds
of these 67k-parameter models at T=20-40), 34 s seq2seq, 14 s gradient flow, 20 s generalisation,
the rest imports, attention maps and report.
Expected (seeds 0, 1; recorded in docs/results/compare_small): adding — the tanh RNN and the
window=0 Transformer censored at T=20 (1,197-2,171 of 2,560 held-out sequences wrong), the LSTM
solved at T=20 (16.4k and 21.7k training sequences) and censored at T=40 on both seeds (291 and 436
wrong), the Transformer solved at both (13.6k / 13.6k at T=20, 14.9k / 12.4k at T=40); copy T=10 —
the LRU solved in 3.2k sequences, the Transformer in 9.3k / 10.2k, the LSTM at chance; the window=0
Transformer passes no gradient to any step but its last; RNNsearch reverses 0.986 of held-out
sequences exactly, the RNN encoder-decoder 0.506.
"""
from configs import compare


def get_config(arg=None):
  del arg
  return compare.get_config("small")
