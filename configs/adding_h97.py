"""The adding problem as Hochreiter & Schmidhuber 1997 ran it (experiment 4): their sequences and
their stopping rule. configs/adding.py with variant=hochreiter1997 and criterion=hochreiter1997.

  attnlab train --config=adding_h97:lstm_chrono,seq_len=100,stop_when_solved=True,final_eval_sequences=2560 --workdir=runs/adding_h97

Sequences (attnlab.tasks.adding, variant hochreiter1997): values U[-1, 1], lengths uniform in
[T, T + T/10], the first marked pair among the first ten, the second among the first T/2 - 1 still
unmarked, target 0.5 + (X1 + X2) / 4, a sequence right when |error| < 0.04.
Stopping rule (attnlab.train.criteria, config.criterion): solved at the first training step where
the MSE over the most recent 2,000 training sequences (2,048 at batch 64: whole steps) is below
0.01 and none of them is wrong. The paper then counts the wrong of 2,560 fresh test sequences
(final_eval_sequences=2560): 74,000 / 209,000 / 853,000 training sequences at T=100 / 500 / 1000,
with 1 / 0 / 1 wrong. The learning-cost comparison trains it as its task adding_h97
(configs/compare.py), beside today's adding.
Argument: as configs/adding.py (model word, then key=value overrides).
Expected on 2 CPU cores (shared): lstm_chrono at T=100, seeds 1001-1003, met the rule after 31,872,
50,752 and 53,056 training sequences (498-829 steps, 51-96 s a run with compilation) and then missed
10, 0 and 0 of 2,560 test sequences (docs/results/hochreiter_adding_t100; the paper: 74,000, 1).
"""
from attnlab.configs import adding


def get_config(arg=None):
  return adding.get_config(",".join(
      filter(None, ["variant=hochreiter1997", "criterion=hochreiter1997", arg])))
