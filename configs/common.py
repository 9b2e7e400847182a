"""Model settings shared by the task configs: the sizes used across attnlab's comparisons.

`model_config(name)` gives the registry defaults narrowed to the sizes that train in minutes on
2 CPU cores (hidden 128 for recurrent models, a 2-layer d=64 Transformer, a 2-layer LRU).
"""
from attnlab.train import config as cfg_lib

MODEL_SIZES = {
    "rnn": dict(hidden_size=128),
    "lstm": dict(hidden_size=128),
    "gru": dict(hidden_size=128),
    "lru": dict(d_model=64, state_size=64, num_layers=2, r_min=0.9, r_max=0.999, max_phase=0.314),
    "transformer": dict(d_model=64, num_heads=4, d_ff=256, num_layers=2, pre_ln=True),
}


def task_config(task: str, arg, default_model: str, **task_params):
  """The base config for `task` with the model and overrides named by a config-file argument."""
  model, overrides = cfg_lib.parse_arg(arg, default_model)
  config = cfg_lib.base_config(model, task, **task_params)
  config.model.update(MODEL_SIZES.get(model, {}))
  return config, overrides
