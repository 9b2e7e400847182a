"""attnlab.train: configs, train state and steps, sharding, checkpoints, metrics, the training loop."""
from attnlab.train.config import base_config, validate
from attnlab.train.trainer import Preempted, train_and_evaluate, train_seeds
