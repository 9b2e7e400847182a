"""Each model's training recipe: variants, matched sizes, readout, GRU carry bias, LRU optimizer and BatchNorm."""
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

import attnlab
from attnlab import models, tasks
from attnlab.train import base_config, optim, steps, train_and_evaluate, vmap_seeds
from attnlab.train import config as cfg_lib
from attnlab.train.run_dir import config_to_json
from attnlab.configs import adding, common, copy
from tests.marks import fast_only

WORDS = list(common.MODEL_SIZES) + list(common.MODEL_VARIANTS)


# ------------------------------------------------------------------------------ variants, sizes


@pytest.mark.parametrize("config_file", [adding, copy])
def test_variants_build_their_registry_model_and_keep_their_name(config_file):
  for word in WORDS:
    config = config_file.get_config(word)
    name = common.MODEL_VARIANTS.get(word, (word,))[0]
    assert config.model.name == name and config.model_variant == word
    assert config_to_json(config)["model_variant"] == word  # saved in config.json
    cfg_lib.validate(config, 1)
  assert adding.get_config("transformer_window0").model.window == 0
  assert adding.get_config("transformer").model.window is None


def test_ablation_variants_set_their_fields_and_rates():
  for w in (1, 4, 16):
    assert adding.get_config(f"transformer_window{w}").model.window == w
  uniform = adding.get_config("transformer_uniform").model
  assert (uniform.attention, uniform.causal, uniform.window) == ("uniform", True, None)
  assert adding.get_config("transformer").model.attention == "softmax"
  assert adding.get_config("transformer_rope").model.positional == "rope"
  assert adding.get_config("transformer_nope").model.positional == "none"
  for word in ("irnn", "irnn_block"):
    m = adding.get_config(word).model
    assert (m.activation, m.recurrent_init, m.input_std) == ("relu", "identity", 1e-3)
  assert adding.get_config("irnn").model.block == "cell"
  assert adding.get_config("irnn").optimizer.learning_rate == common.MODEL_LR["rnn"]
  for word in ("rnn_block", "lstm_block", "gru_block", "irnn_block"):
    config = copy.get_config(word)
    assert (config.model.block, config.model.num_layers) == ("residual", 2)
    assert config.optimizer.learning_rate == common.MODEL_LR["mingru"]
  assert adding.get_config("lstm").model.block == "cell"


def test_chrono_max_follows_the_task_length_set_later():
  assert adding.get_config("lstm_chrono").model.chrono_max == 100
  assert adding.get_config("gru_carry,seq_len=300").model.chrono_max == 300
  assert copy.get_config("lstm_chrono,task.seq_len=50").model.chrono_max == 60  # T + num_copy
  config = adding.get_config("lstm_chrono")
  config.task.seq_len = 700  # e.g. --config.task.seq_len=700 after get_config
  assert config.model.chrono_max == 700 and config_to_json(config)["model"]["chrono_max"] == 700
  assert adding.get_config("lstm").model.chrono_max is None


def test_unknown_model_word_lists_names_and_variants():
  with pytest.raises(ValueError, match=r"unknown model 'lstn'; valid names: rnn, .*; variants: "
                                       r"transformer_window0, lstm_chrono, gru_carry"):
    adding.get_config("lstn")


@pytest.mark.parametrize("config_file", [adding, copy])
def test_parameter_counts_within_2x(config_file):
  counts = {w: common.param_count(config_file.get_config(w)) for w in WORDS}
  assert max(counts.values()) <= 2 * min(counts.values()), counts


def test_param_count_matches_initialised_parameters():
  config = copy.get_config("gru")
  spec = cfg_lib.task_spec(config)
  model = models.build(cfg_lib.model_config(config, spec))
  batch = tasks.generate("copy", 2, seq_len=config.task.seq_len)
  params = jax.eval_shape(model.init, jax.random.PRNGKey(0), batch["inputs"])["params"]
  assert common.param_count(config) == sum(p.size for p in jax.tree.leaves(params))


# ------------------------------------------------------------------------------------- readout


@pytest.mark.parametrize("word", fast_only(WORDS, keep=("rnn", "lstm", "transformer")))
def test_adding_reads_the_last_step_which_sees_the_first_only_through_the_model(word):
  config = adding.get_config(f"{word},seq_len=12")
  assert config.model.pooling == "last"
  model = models.build(cfg_lib.model_config(config, cfg_lib.task_spec(config)))
  x = jnp.asarray(tasks.generate("adding", 2, seq_len=12)["inputs"])
  variables = jax.jit(model.init)(jax.random.PRNGKey(0), x)
  apply = jax.jit(model.apply)
  changed = x.at[:, 0, 0].add(0.5)  # only the first value changes
  moved = not np.allclose(apply(variables, x), apply(variables, changed), atol=1e-7)
  window = config.model.get("window")  # local attention: L layers reach L * window steps back
  assert moved == (window is None or config.model.num_layers * window >= 11)  # window0/1/4: no


def test_lru_pools_the_mean_on_classification_tasks():
  from attnlab.configs import temporal_order
  assert temporal_order.get_config("lru").model.pooling == "mean"
  assert temporal_order.get_config("lstm").model.pooling == "summary"


# ------------------------------------------------------------------------------- GRU carry bias


def gru_bias(**fields):
  x = jnp.ones((1, 3, 4))
  cell = models.GRU(hidden_size=8, **fields).init(jax.random.PRNGKey(0), x)["params"]["layer_0_fwd"]["cell"]
  return np.split(np.asarray(cell["b_x"]), 3), np.asarray(cell["b_h"])


def test_gru_carry_bias_initialises_the_update_gate():
  (b_r, b_z, b_n), b_h = gru_bias()
  assert not np.any(b_r) and not np.any(b_z) and not np.any(b_n) and not np.any(b_h)  # default
  (b_r, b_z, b_n), b_h = gru_bias(carry_bias=2.5)
  np.testing.assert_array_equal(b_z, 2.5)
  assert not np.any(b_r) and not np.any(b_n) and not np.any(b_h)
  (_, b_z, _), _ = gru_bias(chrono_max=50)  # chrono: log U(1, T_max - 1)
  assert np.all(b_z >= 0) and np.all(b_z <= np.log(49)) and np.ptp(b_z) > 0


def test_gru_with_a_large_carry_bias_keeps_its_initial_state():
  """z -> 1 carries h (h = (1 - z) n + z h_prev): the bias sits on the gate that keeps the state."""
  x = jax.random.normal(jax.random.PRNGKey(0), (2, 20, 4))
  h0 = jax.random.normal(jax.random.PRNGKey(1), (2, 8))
  layer = models.RecurrentLayer("gru", 8, carry_bias=30.0)
  variables = layer.init(jax.random.PRNGKey(2), x, initial_state=h0)
  _, h_t = layer.apply(variables, x, initial_state=h0)
  np.testing.assert_allclose(h_t, h0, atol=1e-5)
  free = jax.tree.map(lambda a: a, variables)
  free["params"]["cell"]["b_x"] = jnp.zeros_like(free["params"]["cell"]["b_x"])  # no carry bias
  _, h_free = layer.apply(free, x, initial_state=h0)
  assert not np.allclose(h_free, h0, atol=1e-2)


# ---------------------------------------------------------------------------- optimizer groups


def test_recurrent_parameter_group_one_step_by_hand():
  """AdamW's first step is -lr * (sign(g) + wd * p); the recurrent group: -scale * lr * sign(g)."""
  opt = optim.default_config()
  opt.update(name="adamw", learning_rate=0.1, weight_decay=0.05, recurrent_lr_scale=0.5,
             clip_norm=0.0)
  tx, _ = optim.make_optimizer(opt, 10)
  params = {"block_0": {"LRU_0": {"nu_log": jnp.array([2.0]), "B_re": jnp.array([3.0])}},
            "head": {"gamma_log": jnp.array([-1.0]), "kernel": jnp.array([4.0])}}
  grads = {"block_0": {"LRU_0": {"nu_log": jnp.array([0.5]), "B_re": jnp.array([0.5])}},
           "head": {"gamma_log": jnp.array([-0.2]), "kernel": jnp.array([-0.3])}}
  updates, _ = tx.update(grads, tx.init(params), params)
  new = optax.apply_updates(params, updates)
  np.testing.assert_allclose(new["block_0"]["LRU_0"]["nu_log"], 2.0 - 0.05, rtol=1e-6)
  np.testing.assert_allclose(new["head"]["gamma_log"], -1.0 + 0.05, rtol=1e-6)
  np.testing.assert_allclose(new["block_0"]["LRU_0"]["B_re"], 3.0 - 0.1 * (1 + 0.05 * 3.0), rtol=1e-6)
  np.testing.assert_allclose(new["head"]["kernel"], 4.0 - 0.1 * (-1 + 0.05 * 4.0), rtol=1e-6)


def test_plain_optimizer_keeps_one_group_and_bad_scale_is_refused():
  opt = optim.default_config()
  tx, _ = optim.make_optimizer(opt, 10)
  params = {"nu_log": jnp.ones(2)}
  state = tx.init(params)
  assert "recurrent" not in str(jax.tree_util.tree_structure(state))
  opt.recurrent_lr_scale = 0.0
  with pytest.raises(ValueError, match="recurrent_lr_scale=0.0; must be > 0"):
    optim.make_optimizer(opt, 10)


def test_lru_config_uses_the_papers_optimizer():
  opt = adding.get_config("lru").optimizer
  assert (opt.name, opt.weight_decay, opt.recurrent_lr_scale, opt.schedule) == (
      "adamw", 0.05, 0.5, "warmup_cosine")
  assert 0 < opt.warmup_steps < adding.get_config("lru").num_train_steps
  assert set(opt.recurrent_params) == {"nu_log", "theta_log", "gamma_log"}
  assert adding.get_config("lru").model.max_phase == pytest.approx(2 * np.pi)
  assert adding.get_config("lstm").optimizer.name == "adam"


def test_transformer_config_uses_vaswanis_schedule():
  """Warmup to the model's peak rate, then 1/sqrt(step) decay; the recurrent models stay constant."""
  for word in ("transformer", "transformer_window0"):
    opt = adding.get_config(word).optimizer
    assert (opt.name, opt.schedule, opt.warmup_steps) == ("adam", "rsqrt", 100)
    lr = optim.make_schedule(opt, 1156)
    assert float(lr(100)) == pytest.approx(opt.learning_rate)
    assert float(lr(400)) == pytest.approx(opt.learning_rate / 2)
  assert adding.get_config("lstm").optimizer.schedule == "constant"


# ---------------------------------------------------------------------------- LRU BatchNorm


def lru_setup(**model_fields):
  config = base_config("lru", "adding", seq_len=10)
  config.model.update(dict(d_model=8, state_size=8, num_layers=2, norm="batch"), **model_fields)
  config.optimizer.update(name="sgd", learning_rate=0.1)
  spec, model_config = cfg_lib.validate(config, 1)
  tx, schedule = optim.make_optimizer(config.optimizer, 10)
  batches = [tasks.generate("adding", 8, start=8 * i, seq_len=10) for i in range(2)]
  return models.build(model_config), tx, spec, schedule, batches


@pytest.mark.slow
def test_batchnorm_statistics_train_and_evaluate_with_running_averages():
  net, tx, spec, schedule, batches = lru_setup()
  state = steps.create_state(net, tx, spec, jax.random.PRNGKey(0), batches[0])
  assert set(state.model_state) == {"batch_stats"}
  train = jax.jit(steps.make_train_step(net, tx, spec, schedule, seed=0))
  new, _ = train(state, batches[0])
  changed = jax.tree.map(lambda a, b: not np.allclose(a, b), state.model_state, new.model_state)
  assert all(jax.tree.leaves(changed))  # every running mean / variance moved
  # Evaluation uses the running averages: one sequence's output does not depend on its batch.
  variables = {"params": new.params, **new.model_state}
  x = batches[1]["inputs"]
  np.testing.assert_allclose(net.apply(variables, x)[:2], net.apply(variables, x[:2]), rtol=1e-5,
                             atol=1e-6)
  assert not steps.create_state(models.build(ml_collections.ConfigDict(dict(
      name="lstm", hidden_size=4))), tx, spec, jax.random.PRNGKey(0), batches[0]).model_state


@pytest.mark.slow
def test_batchnorm_vmapped_seeds_equal_separate_runs():
  net, tx, spec, schedule, batches = lru_setup()
  seeds = (0, 3)
  states = vmap_seeds.init_states(net, tx, spec, seeds, batches[0])
  step = jax.jit(vmap_seeds.make_vmapped_train_step(net, tx, spec, schedule, seeds))
  for batch in batches:
    states, _ = step(states, batch)
  for k, seed in enumerate(seeds):
    state = steps.create_state(net, tx, spec, jax.random.PRNGKey(seed), batches[0])
    one = jax.jit(steps.make_train_step(net, tx, spec, schedule, seed=seed))
    for batch in batches:
      state, _ = one(state, batch)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5),
                 vmap_seeds.unstack(states, k).model_state, state.model_state)


@pytest.mark.slow
def test_batchnorm_run_checkpoints_resumes_and_loads(tmp_path):
  config = base_config("lru", "adding", seq_len=10)
  config.model.update(d_model=8, state_size=8, num_layers=1, norm="batch", dropout_rate=0.1)
  config.num_train_steps, config.batch_size = 4, 8
  config.eval_every = config.checkpoint_every = config.log_every = 2
  config.num_eval_batches = 1
  config.checkpoint.async_save = False
  workdir = str(tmp_path / "run")
  train_and_evaluate(config, workdir)
  run = attnlab.load_run(workdir, "last")
  assert run.step == 4 and set(run.model_state) == {"batch_stats"}
  batch = tasks.generate("adding", 4, seq_len=10)
  assert np.isfinite(run.model.apply(run.variables, batch["inputs"], batch["lengths"])).all()
  config.num_train_steps = 6  # resumes from step 4 with its batch statistics
  train_and_evaluate(config, workdir)
  assert attnlab.load_run(workdir, "last").step == 6


def test_workdir_from_before_the_added_fields_resumes(tmp_path):
  import json
  from attnlab.train import run_dir
  config = base_config("lstm", "adding", seq_len=10)
  old = config_to_json(config)
  del old["model"]["carry_bias"], old["optimizer"]["recurrent_lr_scale"]
  del old["optimizer"]["recurrent_params"]
  (tmp_path / "checkpoints" / "3").mkdir(parents=True)  # a checkpoint: the workdir claims its config
  (tmp_path / "config.json").write_text(json.dumps(old))
  run_dir.check_resumable_config(str(tmp_path), config)  # the added fields keep the old behaviour
  (tmp_path / "config.json").write_text(json.dumps(old))
  config.model.carry_bias = 1.0
  with pytest.raises(ValueError, match=r"model.carry_bias: 0.0 -> 1.0"):
    run_dir.check_resumable_config(str(tmp_path), config)
