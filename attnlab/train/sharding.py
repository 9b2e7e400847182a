"""Devices, meshes and shardings: `jax.jit` over a ('data', 'model') Mesh, or classic `jax.pmap`.

Parameters are plain pytrees, so their logical axes are read off their paths and shapes here
(`logical_axes`) rather than annotated inside the models: attention projections and sLSTM's
per-head recurrent blocks split over heads, MLP and recurrent weights and Mamba's inner channels
over their hidden units. `config.logical_axis_rules` maps each logical axis to a mesh axis (or
None = replicated); a dimension that the mesh axis does not divide stays replicated. Batches are
split over 'data'.
"""
import os
import re

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P


def maybe_initialize_distributed(config):
  """jax.distributed.initialize() when config.distributed is True, or None with the environment set.

  The environment counts as asking for it when JAX_COORDINATOR_ADDRESS is set (then
  JAX_NUM_PROCESSES and JAX_PROCESS_ID give the process count and this process's index, e.g. for
  several local processes), or on a Cloud TPU pod slice (TPU_WORKER_HOSTNAMES lists several
  workers; JAX then finds everything itself).
  """
  wanted = config.distributed
  if wanted is None:
    hosts = os.environ.get("TPU_WORKER_HOSTNAMES", "")
    wanted = bool(os.environ.get("JAX_COORDINATOR_ADDRESS")) or len(hosts.split(",")) > 1
  if not wanted or jax.distributed.is_initialized():
    return
  kwargs = {}
  if os.environ.get("JAX_NUM_PROCESSES"):
    kwargs["num_processes"] = int(os.environ["JAX_NUM_PROCESSES"])
  if os.environ.get("JAX_PROCESS_ID"):
    kwargs["process_id"] = int(os.environ["JAX_PROCESS_ID"])
  jax.distributed.initialize(**kwargs)


def make_mesh(config) -> Mesh:
  """The ('data', 'model') mesh over all devices; -1 in config.mesh means 'the rest'."""
  devices = jax.devices()
  data, model = config.mesh.data, config.mesh.model
  if model == -1 and data == -1:
    raise ValueError("config.mesh.data and config.mesh.model cannot both be -1")
  if model == -1:
    model = len(devices) // data
  if data == -1:
    data = len(devices) // model
  if data <= 0 or model <= 0 or data * model != len(devices):
    raise ValueError(f"config.mesh data={config.mesh.data} x model={config.mesh.model} does not "
                     f"match the {len(devices)} devices")
  return Mesh(np.asarray(devices).reshape(data, model), ("data", "model"))


def data_axis_size(config) -> int:
  if config.parallelism == "pmap":
    return jax.device_count()
  return make_mesh(config).shape["data"]


_PATTERNS = (  # (path regex, logical axes of the parameter)
    (r"(query|key|value)/kernel$", ("embed", "heads", None)),
    (r"(query|key|value)/bias$", ("heads", None)),
    (r"out/kernel$", ("heads", None, "embed")),
    (r"mlp/Dense_0/kernel$", ("embed", "mlp")),
    (r"mlp/Dense_0/bias$", ("mlp",)),
    (r"mlp/Dense_1/kernel$", ("mlp", "embed")),
    (r"cell/(W_xh|W_x)$", (None, "hidden")),
    (r"cell/(W_hh|W_h)$", (None, "hidden")),
    (r"cell/(b_h|b|b_x)$", ("hidden",)),
    (r"cell/R$", (None, "heads", None, None)),  # sLSTM: block-diagonal, one block per head
    (r"(in_proj|dt_proj)/kernel$", (None, "hidden")),  # Mamba: its inner channels E
    (r"(x_proj|out_proj)/kernel$", ("hidden", None)),
    (r"(dt_proj/bias|conv_bias|/D)$", ("hidden",)),
    (r"conv_kernel$", (None, "hidden")),
    (r"A_log$", ("hidden", None)),
)


def logical_axes(params):
  """A tree like params of logical-axis tuples (None for replicated dimensions)."""

  def axes(path, leaf):
    name = "/".join(str(getattr(k, "key", k)) for k in path)
    for pattern, logical in _PATTERNS:
      if re.search(pattern, name) and len(logical) == np.ndim(leaf):
        return logical
    return (None,) * np.ndim(leaf)

  return jax.tree_util.tree_map_with_path(axes, params)


def param_specs(params, rules, mesh: Mesh):
  """PartitionSpecs for params from their logical axes and `rules` ((logical, mesh axis) pairs)."""
  rules = dict(tuple(r) for r in rules)

  def spec(leaf, logical):
    dims = []
    for size, name in zip(np.shape(leaf), logical):
      axis = rules.get(name)
      dims.append(axis if axis is not None and size % mesh.shape[axis] == 0 else None)
    return P(*dims)

  return jax.tree.map(spec, params, logical_axes(params))


def shardings(tree_specs, mesh: Mesh):
  return jax.tree.map(lambda s: NamedSharding(mesh, s), tree_specs,
                      is_leaf=lambda x: isinstance(x, P))


def batch_sharding(mesh: Mesh) -> NamedSharding:
  """Leading (batch) axis over 'data', the rest replicated."""
  return NamedSharding(mesh, P("data"))


def global_batch(local_batch: dict, mesh: Mesh) -> dict:
  """This host's slice of the batch (dict of NumPy arrays) -> global jax.Arrays sharded over 'data'."""
  sharding = batch_sharding(mesh)
  return {k: jax.make_array_from_process_local_data(sharding, v) for k, v in local_batch.items()}


def split_for_pmap(local_batch: dict) -> dict:
  """(B_local, ...) -> (local_devices, B_local / local_devices, ...) for jax.pmap."""
  n = jax.local_device_count()
  return {k: v.reshape((n, v.shape[0] // n) + v.shape[1:]) for k, v in local_batch.items()}
