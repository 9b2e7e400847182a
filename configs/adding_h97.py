"""The adding problem as Hochreiter & Schmidhuber 1997 ran it (experiment 4): their sequences and
their stopping rule. configs/adding.py with variant=hochreiter1997 and criterion=hochreiter1997.

  python -m experiments.main --config=configs/adding_h97.py:lstm_chrono,seq_len=100,stop_when_solved=True,final_eval_sequences=2560 --workdir=runs/adding_h97

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
Expected on 2 CPU cores: a step costs about what configs/adding.py's does at 1.1 T (sequences
are up to T + T/10 long); what lstm_chrono reaches at T=100: docs/results/hochreiter_adding_t100.
"""
from configs import adding


def get_config(arg=None):
  return adding.get_config(",".join(
      filter(None, ["variant=hochreiter1997", "criterion=hochreiter1997", arg])))
