"""Model registry: `build(config)` creates any attnlab model from an `ml_collections.ConfigDict`.

`config` is either a model config (fields below) or a whole experiment config with a `model` field.
Unset fields take the defaults of `default_config(name)`; unknown names and fields are errors that
list the valid choices.

Sequence models (`rnn`, `lstm`, `gru`, `lru`, `transformer`, `mamba`, `mingru`, `minlstm`,
`slstm`) are `SequenceModel`s:
  model.apply(variables, inputs, lengths=None, train=False) -> (B,num_outputs) or (B,T,num_outputs).
`rnn`, `lstm` and `gru` are one cell per layer (block='cell'), or with block='residual' the cell in
minGRU's pre-LayerNorm residual block with an MLP of width d_ff (`RecurrentBlockStack`).
The Transformer's attention='uniform' replaces softmax(q k^T) by fixed uniform weights over the
visible keys (`ops.uniform_attention`; with causal, position i averages the values of steps 0..i).
Seq2seq models (`seq2seq_rnn`, `seq2seq_attention`, `transformer_seq2seq`):
  model.apply(variables, source, target_inputs, source_lengths=None, train=False) -> (B,Tt,V).
"""
import math

import jax
import jax.numpy as jnp
import ml_collections

from attnlab.models.attention import ATTENTION_IMPLS, ATTENTIONS
from attnlab.ops import scan as scan_ops
from attnlab.models.heads import InputEmbedding, SequenceModel
from attnlab.models.lru import NORMS, LRUStack
from attnlab.models.mamba import MambaStack
from attnlab.models.min_rnn import MinRNNStack
from attnlab.models.recurrent import RECURRENT_INITS, RecurrentStack
from attnlab.models.recurrent_blocks import RecurrentBlockStack
from attnlab.models.seq2seq import RNNSeq2Seq, TransformerSeq2Seq
from attnlab.models.slstm import SLSTMStack
from attnlab.models.transformer import Transformer
from attnlab.ops.min_rnn import METHODS as MIN_SCANS
from attnlab.ops.selective_scan import METHODS as S6_SCANS
from attnlab.ops.slstm import FORGET_GATES

SEQUENCE_MODELS = ("rnn", "lstm", "gru", "lru", "transformer", "mamba", "mingru", "minlstm", "slstm")
SEQ2SEQ_MODELS = ("seq2seq_rnn", "seq2seq_attention", "transformer_seq2seq")
MODELS = SEQUENCE_MODELS + SEQ2SEQ_MODELS

_HEAD = dict(vocab_size=None, num_outputs=1, output="sequence", pooling="summary", dropout_rate=0.0)
_RECURRENT = dict(_HEAD, embed_dim=None, hidden_size=128, num_layers=1, bidirectional=False,
                  activation="tanh", reset_after=False, recurrent_scale=1.0, forget_bias=1.0,
                  chrono_max=None, unroll=1, carry_bias=0.0, recurrent_init="orthogonal",
                  input_std=None, block="cell", d_ff=None)
BLOCKS = ("cell", "residual")
_TRANSFORMER = dict(num_layers=2, d_model=128, num_heads=4, d_ff=512, dropout_rate=0.0, pre_ln=False,
                    positional="sinusoidal", max_len=2048, activation="relu")
_DEFAULTS = {
    "rnn": _RECURRENT,
    "lstm": _RECURRENT,
    "gru": _RECURRENT,
    "lru": dict(_HEAD, embed_dim=None, d_model=128, state_size=128, num_layers=1, r_min=0.0,
                r_max=1.0, max_phase=6.283185307179586, norm="layer", scan="auto"),
    "transformer": dict(_HEAD, **_TRANSFORMER, pooling="summary", causal=False, window=None,
                        attention_impl="auto", attention="softmax"),
    "mamba": dict(_HEAD, embed_dim=None, d_model=128, d_state=16, num_layers=2, expand=2,
                  conv_width=4, dt_rank=None, scan="auto", selective=True),
    "mingru": dict(_HEAD, embed_dim=None, d_model=128, num_layers=2, d_ff=256, scan="auto",
                   unroll=1),
    "slstm": dict(_HEAD, embed_dim=None, d_model=128, num_heads=4, num_layers=2, d_ff=None,
                  forget_gate="sigmoid", unroll=1),
    "seq2seq_rnn": dict(vocab_size=None, target_vocab_size=None, embed_dim=64, hidden_size=128,
                        cell="gru", encoder_layers=1, bidirectional=None, dropout_rate=0.0),
    "transformer_seq2seq": dict(_TRANSFORMER, vocab_size=None, target_vocab_size=None),
}
_DEFAULTS["seq2seq_attention"] = dict(_DEFAULTS["seq2seq_rnn"], attention_size=None)
_DEFAULTS["minlstm"] = _DEFAULTS["mingru"]
_POSITIVE = ("hidden_size", "num_layers", "d_model", "num_heads", "d_ff", "state_size", "embed_dim",
             "num_outputs", "vocab_size", "target_vocab_size", "max_len", "encoder_layers",
             "attention_size", "unroll", "d_state", "expand", "conv_width", "dt_rank")


def default_config(name: str) -> ml_collections.ConfigDict:
  """All fields of model `name` with their defaults (d = 128, the standard size)."""
  _check_name(name)
  return ml_collections.ConfigDict(dict(_DEFAULTS[name], name=name))


def _check_name(name):
  if name not in MODELS:
    raise ValueError(f"unknown model name {name!r}; valid names: {', '.join(MODELS)}")


def resolve_config(config) -> dict:
  """Model fields of `config` merged over the defaults, validated. Returns a plain dict."""
  config = config.model if "model" in config else config
  name = config.get("name")
  _check_name(name)
  fields = dict(_DEFAULTS[name])
  unknown = sorted(set(config.keys()) - set(fields) - {"name"})
  if unknown:
    raise ValueError(f"model {name!r} has no field(s) {unknown}; valid fields: {sorted(fields)}")
  fields.update({k: v for k, v in config.items() if k != "name"})
  for key in _POSITIVE:
    value = fields.get(key)
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value <= 0):
      raise ValueError(f"model.{key} must be a positive integer, got {value!r}")
  if not 0.0 <= fields["dropout_rate"] < 1.0:
    raise ValueError(f"model.dropout_rate must be in [0, 1), got {fields['dropout_rate']}")
  if name in SEQ2SEQ_MODELS and fields["vocab_size"] is None:
    raise ValueError(f"model {name!r} needs model.vocab_size (token inputs)")
  if fields.get("attention_impl", "plain") not in ATTENTION_IMPLS:
    raise ValueError(f"model.attention_impl={fields['attention_impl']!r}; valid choices: "
                     f"{list(ATTENTION_IMPLS)} (attention weights are sown only with 'plain')")
  # the LRU's linear recurrence has 'auto'; minGRU/minLSTM also 'blocked'
  scans = {"lru": scan_ops.METHODS, "mingru": MIN_SCANS, "minlstm": MIN_SCANS}.get(name, S6_SCANS)
  if fields.get("scan", scans[0]) not in scans:
    raise ValueError(f"model.scan={fields['scan']!r}; valid choices: {list(scans)}")
  if fields.get("forget_gate", "sigmoid") not in FORGET_GATES:
    raise ValueError(f"model.forget_gate={fields['forget_gate']!r}; valid choices: {list(FORGET_GATES)}")
  if not isinstance(fields.get("selective", True), bool):
    raise ValueError(f"model.selective={fields['selective']!r}; valid choices: [True, False] "
                     "(False: Mamba's time-invariant ablation)")
  _check_recurrent(fields)
  if fields.get("attention", "softmax") not in ATTENTIONS:
    raise ValueError(f"model.attention={fields['attention']!r}; valid choices: {list(ATTENTIONS)}")
  if fields.get("norm", "layer") not in NORMS:
    raise ValueError(f"model.norm={fields['norm']!r}; valid choices: {list(NORMS)}")
  if "d_model" in fields and "num_heads" in fields and fields["d_model"] % fields["num_heads"]:
    raise ValueError(f"model.d_model={fields['d_model']} must be divisible by "
                     f"model.num_heads={fields['num_heads']}")
  return dict(fields, name=name)


def _check_recurrent(fields):
  """The fields of rnn/lstm/gru only: recurrent_init, input_std, block and d_ff."""
  if "block" not in fields:
    return
  for key, choices in (("block", BLOCKS), ("recurrent_init", RECURRENT_INITS)):
    if fields[key] not in choices:
      raise ValueError(f"model.{key}={fields[key]!r}; valid choices: {list(choices)}")
  std = fields["input_std"]
  if std is not None and (isinstance(std, bool) or not isinstance(std, (int, float)) or std <= 0):
    raise ValueError(f"model.input_std must be None (LeCun normal) or > 0, got {std!r}")
  if fields["block"] == "cell" and fields["d_ff"] is not None:
    raise ValueError(f"model.d_ff={fields['d_ff']} needs model.block='residual' "
                     "(a cell has no MLP)")
  if fields["block"] == "residual" and fields["bidirectional"]:
    raise ValueError("model.bidirectional=True needs model.block='cell' "
                     "(residual blocks are causal)")


def count_params(config, input_dim: int = None) -> int:
  """Number of trainable parameters of the model `config` describes (shapes only, nothing computed).

  Real-valued models need `input_dim` (the task's channels); token models read model.vocab_size.
  """
  f = resolve_config(config)
  model = build(config)
  if f["name"] in SEQ2SEQ_MODELS:
    args = (jnp.zeros((1, 4), jnp.int32),) * 2
  elif f["vocab_size"] is not None:
    args = (jnp.zeros((1, 4), jnp.int32),)
  else:
    if input_dim is None:
      raise ValueError("count_params: real-valued inputs need input_dim (the task's channels)")
    args = (jnp.zeros((1, 4, input_dim)),)
  shapes = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), *args))["params"]
  return int(sum(math.prod(s.shape) for s in jax.tree.leaves(shapes)))


def build(config):
  """Creates the (unbound) Flax module for `config` (a model or experiment ConfigDict)."""
  f = resolve_config(config)
  name = f["name"]
  if name == "seq2seq_rnn" or name == "seq2seq_attention":
    return RNNSeq2Seq(f["vocab_size"], f["target_vocab_size"], f["embed_dim"], f["hidden_size"],
                      f["cell"], attention=name == "seq2seq_attention",
                      attention_size=f.get("attention_size"), encoder_layers=f["encoder_layers"],
                      bidirectional=f["bidirectional"], dropout_rate=f["dropout_rate"])
  if name == "transformer_seq2seq":
    return TransformerSeq2Seq(f["vocab_size"], f["target_vocab_size"], f["d_model"], f["num_heads"],
                              f["num_layers"], f["d_ff"], f["dropout_rate"], f["pre_ln"],
                              f["positional"], f["max_len"], f["activation"])
  if name in ("rnn", "lstm", "gru"):
    embed_dim = f["embed_dim"] or (f["hidden_size"] if f["vocab_size"] else None)
    stack_kw = dict(cell=name, hidden_size=f["hidden_size"], num_layers=f["num_layers"],
                    bidirectional=f["bidirectional"], dropout_rate=f["dropout_rate"],
                    activation=f["activation"], reset_after=f["reset_after"],
                    recurrent_scale=f["recurrent_scale"], forget_bias=f["forget_bias"],
                    chrono_max=f["chrono_max"], unroll=f["unroll"], carry_bias=f["carry_bias"],
                    recurrent_init=f["recurrent_init"], input_std=f["input_std"])
    if f["block"] == "residual":
      backbone = RecurrentBlockStack(**stack_kw, d_ff=f["d_ff"])
    else:
      backbone = RecurrentStack(**stack_kw)
    embed = InputEmbedding(f["vocab_size"], embed_dim)
  elif name == "lru":
    embed_dim = f["embed_dim"] or (f["d_model"] if f["vocab_size"] else None)
    backbone = LRUStack(f["d_model"], f["state_size"], f["num_layers"], f["r_min"], f["r_max"],
                        f["max_phase"], f["dropout_rate"], f["norm"], f["scan"])
    embed = InputEmbedding(f["vocab_size"], embed_dim)
  elif name == "mamba":
    embed_dim = f["embed_dim"] or (f["d_model"] if f["vocab_size"] else None)
    backbone = MambaStack(f["d_model"], f["d_state"], f["num_layers"], f["expand"], f["conv_width"],
                          f["dt_rank"], scan=f["scan"], dropout_rate=f["dropout_rate"],
                          selective=f["selective"])
    embed = InputEmbedding(f["vocab_size"], embed_dim)
  elif name in ("mingru", "minlstm"):
    embed_dim = f["embed_dim"] or (f["d_model"] if f["vocab_size"] else None)
    backbone = MinRNNStack(name, f["d_model"], f["num_layers"], f["d_ff"], f["dropout_rate"],
                           f["scan"], f["unroll"])
    embed = InputEmbedding(f["vocab_size"], embed_dim)
  elif name == "slstm":
    embed_dim = f["embed_dim"] or (f["d_model"] if f["vocab_size"] else None)
    backbone = SLSTMStack(f["d_model"], f["num_heads"], f["num_layers"], f["d_ff"],
                          f["forget_gate"], f["dropout_rate"], f["unroll"])
    embed = InputEmbedding(f["vocab_size"], embed_dim)
  else:
    backbone = Transformer(f["num_layers"], f["num_heads"], f["d_ff"], f["dropout_rate"], f["pre_ln"],
                           f["causal"], f["positional"], f["max_len"], f["window"], f["activation"],
                           f["attention_impl"], f["attention"])
    embed = InputEmbedding(f["vocab_size"], f["d_model"], scale_tokens=f["vocab_size"] is not None)
  return SequenceModel(embed, backbone, f["num_outputs"], f["output"], f["pooling"])
