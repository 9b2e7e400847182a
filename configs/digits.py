"""Digits pixel by pixel: scikit-learn's 8x8 digits as 64-step sequences (small sequential MNIST).

  attnlab train --config=digits:lstm --workdir=runs/digits_lstm
  attnlab train --config=digits:lstm,task.permute=True --workdir=runs/pdigits

Real data, offline (1437 train / 360 test images). Argument: a model name and overrides;
task.permute=True applies one fixed pixel permutation (psMNIST-style). Baseline: ln 10; eval_score
is accuracy (chance 0.1). Reference at full scale (S4 paper): sMNIST LSTM 98.9%, Transformer 98.9%.
Expected on 2 CPU cores (batch 32, 1000 steps): the LSTM reaches 0.89 test accuracy in under a
minute (measured with other jobs sharing the 2 cores: an upper bound).
"""
from attnlab.configs import common


def get_config(arg=None):
  config = common.make("digits", arg, "lstm", steps=1000, batch_size=32, every=200)
  config.num_eval_batches = 11  # 352 of the 360 held-out images
  return config
