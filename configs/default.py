"""The default job: the small version of the main comparison (configs/compare.py:small).

  python -m experiments.main              # = --config=configs/default.py --workdir=runs/default

rnn, lstm, lru and a Transformer on the adding problem (T=25, 50) and the copy task (T=10, 20), the
gradient flow of each model at initialisation and after training, a tanh RNN with and without
gradient clipping, and RNN encoder-decoders with and without attention on `reverse`; it writes
runs/default/report.md. Every part resumes. MEASURED_DEFAULT
"""
from configs import compare


def get_config(arg=None):
  del arg
  return compare.get_config("small")
