"""ListOps (Long Range Arena): evaluate nested MIN/MAX/MED/SM expressions; 10 classes.

  python -m attnlab.data.prepare --task=listops --num_train=96000 --num_validation=2000 --num_test=2000
  attnlab train --config=listops:transformer --workdir=runs/listops_tf

LRA's setting: 96k training examples (prepared once, source='prepared'), lengths 500-2000, a
4-layer Transformer; published accuracy 36.4% (Transformer), 59.6% (S4), 62.2% (S5). The argument
picks the model; `small` gives lengths 50-200 and fresh generated examples for a CPU run.
Baseline: ln 10 = 2.30; eval_score is accuracy (the most frequent labels, 0 and 9, are ~16% each).
Expected on 2 CPU cores: `small` (lengths 50-200, 1500 steps, 2-layer Transformer) is sized for
them, but no run of it is recorded, so there is no time or accuracy to expect yet. The full LRA
setting is for accelerators (LRA's Transformer: 36.4% after far more training).
"""
from attnlab.configs import common


def get_config(arg=None):
  small = arg is not None and "small" in arg.split(",")
  arg = ",".join(p for p in (arg or "").split(",") if p != "small")
  if small:
    config = common.make("listops", arg, "transformer", steps=1500, batch_size=32, min_len=50,
                         max_len=200, seq_len=200)
  else:
    config = common.make("listops", arg, "transformer", steps=5000, batch_size=32, lr=5e-4)
    config.task.source = "prepared"
    config.task.num_train = 96_000
    if config.model.name == "transformer":
      config.model.update(num_layers=4, d_model=128, d_ff=512)
  return config
