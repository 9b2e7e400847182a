"""The default job: LSTM vs Transformer on the adding problem at T=50 — the small version of the
main comparison (gated recurrence vs attention on a long-range task).

  python -m experiments.main                    # = --config=configs/default.py --workdir=runs/default

Each variant trains into runs/default/<model> and resumes on its own. Expected on 2 CPU cores:
about 2-3 minutes in all; both models solve the task (eval_score, the fraction of sequences
with |error| < 0.04, above 0.9), against the mean predictor's MSE of 0.167.
"""
import ml_collections

from configs import adding


def get_config(arg=None):
  del arg
  config = ml_collections.ConfigDict()
  config.variants = ml_collections.ConfigDict({
      "lstm": adding.get_config("lstm,seq_len=50,steps=1200"),
      "transformer": adding.get_config("transformer,seq_len=50,steps=1200"),
  })
  for variant in config.variants.values():
    variant.eval_every = 300
    variant.checkpoint_every = 300
  return config
