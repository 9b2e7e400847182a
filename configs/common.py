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


SEQ2SEQ_SIZES = {
    "seq2seq_rnn": dict(hidden_size=128, embed_dim=32, cell="gru"),
    "seq2seq_attention": dict(hidden_size=128, embed_dim=32, cell="gru"),
    "transformer_seq2seq": dict(d_model=64, num_heads=4, d_ff=256, num_layers=2, pre_ln=True),
}


def task_config(task: str, arg, default_model: str, **task_params):
  """The base config for `task` with the model and overrides named by a config-file argument."""
  model, overrides = cfg_lib.parse_arg(arg, default_model)
  config = cfg_lib.base_config(model, task, **task_params)
  config.model.update({**MODEL_SIZES, **SEQ2SEQ_SIZES}.get(model, {}))
  if model == "transformer" and config.task.name in PER_STEP_TASKS:
    config.model.causal = True  # per-step outputs: read the sequence in order, like the RNNs
  return config, overrides


PER_STEP_TASKS = ("copy", "selective_copy")


def make(task: str, arg, default_model: str, *, steps: int, batch_size: int = 64, lr: float = 1e-3,
         every: int = 250, **task_params):
  """A complete config: `task` with its parameters, trained `steps` steps with Adam and clipping 1.0.

  `arg` is the config file's argument: a model name and key=value overrides.
  """
  config, overrides = task_config(task, arg, default_model, **task_params)
  config.num_train_steps = steps
  config.batch_size = batch_size
  config.eval_every = config.checkpoint_every = every
  config.optimizer.learning_rate = lr
  config.optimizer.clip_norm = 1.0
  return cfg_lib.apply_overrides(config, overrides)
