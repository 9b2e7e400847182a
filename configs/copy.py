"""The copy memory task (Arjovsky et al. 2016): remember 10 symbols across T blank steps.

  attnlab train --config=copy:transformer --workdir=runs/copy_tf
  attnlab train --config=copy:lstm,seq_len=200 --workdir=runs/copy_lstm
  attnlab train --config=copy:lstm_chrono,seq_len=200 --workdir=runs/copy_chrono

Argument: a model name (rnn, lstm, gru, lru, transformer, mamba, mingru, minlstm, slstm — causal
for this per-step task) or variant (lstm_chrono, gru_carry, transformer_window0; see
configs/common.py) and key=value overrides.
Recipes and their sources (configs/common.py): RNN (Elman, tanh); LSTM (Hochreiter & Schmidhuber
1997, forget bias 1 of Gers et al. 2000); lstm_chrono / gru_carry (chrono init, Tallec & Ollivier
2018, T_max = seq_len + 10, the distance from a symbol to its copy); GRU (Cho et al. 2014); LRU
(Orvieto et al. 2023); Transformer (Vaswani et al. 2017, causal, pre-LN). Tokens are embedded into
64 features for every model; sizes: 68-101k parameters here (configs.common.param_count).
Baseline: the memoryless cross-entropy 10 ln 8 / (T + 20) = 0.173 at T=100; eval_score is the
accuracy on the 10 copied symbols (chance 1/8).
Expected on 2 CPU cores (T=100, batch 64, 1500 steps): one training step takes 179 ms (LSTM),
220 ms (RNN), 290 ms (GRU), 439 ms (Transformer), 544 ms (LRU) (`python -m experiments.step_times
--config=configs/copy.py`, measured with other jobs sharing the 2 cores: an upper bound), so a run
takes about 5-14 min. What each recipe reaches has not been measured yet (the earlier numbers were
for other sizes, and were removed).
"""
from attnlab.configs import common


def get_config(arg=None):
  return common.make("copy", arg, "transformer", steps=1500, seq_len=100)
