"""The adding problem (Hochreiter & Schmidhuber 1997): sum the two marked values of a long sequence.

  attnlab train --config=adding:lstm --workdir=runs/adding_lstm
  attnlab train --config=adding:transformer,seq_len=150 --workdir=runs/adding_tf
  attnlab train --config=adding:lstm_chrono,seq_len=500 --workdir=runs/adding_chrono
  attnlab train --config=adding:lstm_chrono,seq_len=100,variant=hochreiter1997,criterion=hochreiter1997,stop_when_solved=True,final_eval_sequences=2560 --workdir=runs/adding_h97

variant (a task parameter): le2015 (default: values U(0, 1), markers in each half, fixed length T,
target the sum) or hochreiter1997 (Hochreiter & Schmidhuber 1997's own protocol: values U[-1, 1],
the first marker among the first ten steps, lengths T .. T + T/10, target 0.5 + (X1 + X2) / 4,
tolerance 0.04; attnlab.tasks.adding). criterion: task (default: eval_score >= 0.99 at an
evaluation) or hochreiter1997 (the paper's stopping rule on the training stream: training MSE < 0.01
and no wrong sequence over the last 2,000; attnlab.train.criteria). configs/adding_h97.py sets both.

Argument: a model name (rnn, lstm, gru, lru, transformer, mamba, mingru, minlstm, slstm) or
variant (lstm_chrono, gru_carry, irnn, rnn/lstm/gru/irnn_block, transformer_window0/1/4/16,
transformer_uniform, transformer_rope, transformer_nope; see configs/common.py) and key=value
overrides (seq_len, steps, lr, variant, or any dotted field). Every model reads out its last valid
step (model.pooling='last', at lengths - 1 for hochreiter1997's padded sequences): the non-causal
Transformer's last token must collect the two marked values through attention.
Recipes and their sources (configs/common.py): RNN (Elman, tanh); LSTM (Hochreiter & Schmidhuber
1997, forget bias 1 of Gers et al. 2000); lstm_chrono / gru_carry (chrono init, Tallec & Ollivier
2018, T_max = seq_len); GRU (Cho et al. 2014); LRU (Orvieto et al. 2023: AdamW 0.05, recurrent
learning rate x0.5 without weight decay, warmup + cosine); Transformer (Vaswani et al. 2017,
pre-LN, their warmup + 1/sqrt(step) decay).
Sizes: every model has 66-70k parameters here (configs.common.param_count), transformer_uniform 51k.
Baseline: predicting the mean gives MSE 1/6 = 0.167; a sequence is right when |error| < 0.08
(Hochreiter & Schmidhuber's 0.04 on their target scale, see attnlab.tasks.adding), eval_score is the
fraction right, and the task is solved at eval_score >= 0.99.
Expected on 2 CPU cores (T=100, batch 64, 2000 steps): one training step takes 70 ms (LSTM), 94 ms
(RNN), 138 ms (GRU), 333 ms (Transformer), 395 ms (LRU) (`python -m experiments.step_times
--config=configs/adding.py`, measured with other jobs sharing the 2 cores: an upper bound), so a run
takes about 2-13 min. What each recipe reaches has not been measured yet (the earlier numbers were
for other sizes and readouts, and were removed).
"""
from attnlab.configs import common


def get_config(arg=None):
  return common.make("adding", arg, "lstm", steps=2000, seq_len=100,
                     model_fields=dict(pooling="last"))
