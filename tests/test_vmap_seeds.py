"""Training several seeds in one program (vmapped, or looped with lax.map) equals training each seed
on its own."""
import jax
import numpy as np
import pytest

from attnlab import models, tasks
from attnlab.train import config as cfg_lib
from attnlab.train import optim, steps, vmap_seeds

SEEDS = (0, 3)


def setup(model, **model_fields):
  config = cfg_lib.base_config(model, "adding", seq_len=12)
  sizes = dict(hidden_size=16) if model == "lstm" else dict(d_model=16, d_ff=32, num_layers=1)
  config.model.update(dict(sizes, **model_fields))
  # SGD: Adam would turn the rounding noise of gradients that are zero in exact arithmetic (the
  # attention key bias) into full-size steps, which differ between batched and single runs.
  config.optimizer.update(name="sgd", learning_rate=0.1)
  spec, model_config = cfg_lib.validate(config, 1)
  tx, schedule = optim.make_optimizer(config.optimizer, 10)
  batches = [tasks.generate("adding", 8, start=8 * i, seq_len=12) for i in range(3)]
  return models.build(model_config), tx, spec, schedule, batches


@pytest.mark.parametrize("model,fields", [("lstm", {}), pytest.param("transformer", {"dropout_rate": 0.3},
                                                                   marks=pytest.mark.slow)])
def test_vmapped_and_looped_seeds_equal_separate_runs(model, fields):
  net, tx, spec, schedule, batches = setup(model, **fields)
  alone, evaluate_one = [], jax.jit(steps.make_eval_step(net, spec))
  for seed in SEEDS:  # each seed trained on its own: the reference
    state = steps.create_state(net, tx, spec, jax.random.PRNGKey(seed), batches[0])
    one = jax.jit(steps.make_train_step(net, tx, spec, schedule, seed=seed))
    for batch in batches:
      state, single = one(state, batch)
    alone.append((state, single, evaluate_one(state.params, batches[0], state.model_state)))
  for loop in (False, True):  # vmapped, then looped with lax.map
    states = vmap_seeds.init_states(net, tx, spec, SEEDS, batches[0])
    step = jax.jit(vmap_seeds.make_vmapped_train_step(net, tx, spec, schedule, SEEDS, loop=loop))
    for batch in batches:
      states, metrics = step(states, batch)
    assert metrics["loss"].shape == (len(SEEDS),)
    sums = jax.jit(vmap_seeds.make_eval_step(net, spec, loop=loop))(states.params, batches[0],
                                                                    states.model_state)
    for k, (state, single, single_sums) in enumerate(alone):
      np.testing.assert_allclose(metrics["loss"][k], single["loss"], rtol=1e-5, atol=1e-6)
      jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
                   jax.tree.map(lambda x: x[k], sums), single_sums)
      jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5),
                   vmap_seeds.unstack(states, k).params, state.params)
    first = vmap_seeds.unstack(states, 0).params
    assert not all(np.allclose(a, b) for a, b in zip(
        jax.tree.leaves(first), jax.tree.leaves(vmap_seeds.unstack(states, 1).params)))
