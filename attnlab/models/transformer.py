"""Transformer (Vaswani et al. 2017): encoder and decoder blocks, post-LN (the paper) or pre-LN.

  post-LN:  x = LN(x + Drop(Sublayer(x)))        pre-LN:  x = x + Drop(Sublayer(LN(x)))  (+ final LN)
  MLP:      Dense(d_ff) -> ReLU/GELU -> Dense(d_model)

Positions: 'sinusoidal' (added), 'learned' (added, N(0, 0.02) table of `max_len` rows), 'rope'
(rotary on queries and keys), or 'none'. Dropout on embeddings and on each sublayer's output.
Init: LeCun normal Dense kernels and zero biases (Flax defaults), LayerNorm scale 1 and bias 0.
`LayerNorm` has `nn.LayerNorm`'s parameters (scale, bias; epsilon 1e-6) and a hand-written backward
pass (`ops.layer_norm`), so checkpoints of either load into the other.
`attention_impl` ('plain' | 'chunked' | 'fused' | 'auto', see `MultiHeadAttention`) selects the self-attention
kernel of the encoder stack; with 'chunked' or 'fused' the mask is an `ops.MaskSpec`, never (T,T),
and no attention weights are sown. `attention='uniform'` (the ablation of the attention weights,
`ops.uniform_attention`) averages the values of the visible keys uniformly: with `causal`, position
i the steps 0..i; its mask is always an `ops.MaskSpec`.
"""
from typing import Optional

import flax.linen as nn
import jax.numpy as jnp

from attnlab import ops
from attnlab.models.attention import ATTENTIONS, MultiHeadAttention, resolve_impl
from attnlab.models.heads import last_valid, masked_mean
from attnlab.ops.layer_norm import layer_norm

POSITIONALS = ("sinusoidal", "learned", "rope", "none")


class LayerNorm(nn.Module):
  """`nn.LayerNorm` over the last axis (same 'scale' and 'bias' parameters, epsilon 1e-6) computed
  by `ops.layer_norm`, whose backward pass is written out. x (..., F) -> (..., F)."""
  epsilon: float = 1e-6

  @nn.compact
  def __call__(self, x):
    features = x.shape[-1]
    scale = self.param("scale", nn.initializers.ones, (features,), jnp.float32)
    bias = self.param("bias", nn.initializers.zeros, (features,), jnp.float32)
    return layer_norm(x, scale, bias, self.epsilon)


class MLP(nn.Module):
  d_ff: int
  activation: str = "relu"

  @nn.compact
  def __call__(self, x):
    y = ops.get_activation(self.activation)(nn.Dense(self.d_ff)(x))
    return nn.Dense(x.shape[-1])(y)


class AddPositions(nn.Module):
  """Adds sinusoidal or learned position vectors to x (B,T,d); 'rope' and 'none' add nothing."""
  kind: str = "sinusoidal"
  max_len: int = 2048

  @nn.compact
  def __call__(self, x):
    if self.kind not in POSITIONALS:
      raise ValueError(f"unknown positional {self.kind!r}; valid choices: {list(POSITIONALS)}")
    length, dim = x.shape[1], x.shape[2]
    if self.kind == "sinusoidal":
      return x + ops.sinusoidal_positions(length, dim).astype(x.dtype)
    if self.kind == "learned":
      if length > self.max_len:
        raise ValueError(f"sequence length {length} exceeds the learned table's max_len {self.max_len}")
      table = self.param("pos_embedding", nn.initializers.normal(0.02), (self.max_len, dim))
      return x + table[:length].astype(x.dtype)
    return x


class EncoderBlock(nn.Module):
  """Self-attention + MLP. x (B,T,d), mask broadcastable to (B,N,T,T) -> (B,T,d)."""
  num_heads: int
  d_ff: int
  dropout_rate: float = 0.0
  pre_ln: bool = False
  use_rope: bool = False
  activation: str = "relu"
  attention_impl: str = "plain"
  attention: str = "softmax"  # 'softmax' | 'uniform'

  @nn.compact
  def __call__(self, x, mask=None, *, train: bool = False, query_index=None):
    """With `query_index` (B,Q) int: the block's output only at those steps, (B,Q,d) (every
    step still gives keys and values; `MultiHeadAttention`'s query_index)."""
    drop = lambda y: nn.Dropout(self.dropout_rate, deterministic=not train)(y)
    attn = MultiHeadAttention(self.num_heads, use_rope=self.use_rope,
                              attention_impl=self.attention_impl, attention=self.attention,
                              name="self_attention")
    mlp = MLP(self.d_ff, self.activation, name="mlp")
    if query_index is not None:
      rows = lambda y: jnp.take_along_axis(y, query_index[:, :, None], axis=1)
      if self.pre_ln:
        x_rows = rows(x) + drop(attn(LayerNorm(name="ln_attention")(x), mask=mask,
                                     query_index=query_index))
        return x_rows + drop(mlp(LayerNorm(name="ln_mlp")(x_rows)))
      x_rows = LayerNorm(name="ln_attention")(
          rows(x) + drop(attn(x, mask=mask, query_index=query_index)))
      return LayerNorm(name="ln_mlp")(x_rows + drop(mlp(x_rows)))
    if self.pre_ln:
      x = x + drop(attn(LayerNorm(name="ln_attention")(x), mask=mask))
      return x + drop(mlp(LayerNorm(name="ln_mlp")(x)))
    x = LayerNorm(name="ln_attention")(x + drop(attn(x, mask=mask)))
    return LayerNorm(name="ln_mlp")(x + drop(mlp(x)))


class DecoderBlock(nn.Module):
  """Masked self-attention, encoder-decoder attention, MLP. y (B,Tt,d), memory (B,Ts,d) -> (B,Tt,d)."""
  num_heads: int
  d_ff: int
  dropout_rate: float = 0.0
  pre_ln: bool = False
  use_rope: bool = False
  activation: str = "relu"

  @nn.compact
  def __call__(self, y, memory, self_mask=None, cross_mask=None, *, train: bool = False):
    drop = lambda z: nn.Dropout(self.dropout_rate, deterministic=not train)(z)
    self_attn = MultiHeadAttention(self.num_heads, use_rope=self.use_rope, name="self_attention")
    cross_attn = MultiHeadAttention(self.num_heads, name="cross_attention")
    mlp = MLP(self.d_ff, self.activation, name="mlp")
    if self.pre_ln:
      y = y + drop(self_attn(LayerNorm(name="ln_self")(y), mask=self_mask))
      y = y + drop(cross_attn(LayerNorm(name="ln_cross")(y), memory, mask=cross_mask))
      return y + drop(mlp(LayerNorm(name="ln_mlp")(y)))
    y = LayerNorm(name="ln_self")(y + drop(self_attn(y, mask=self_mask)))
    y = LayerNorm(name="ln_cross")(y + drop(cross_attn(y, memory, mask=cross_mask)))
    return LayerNorm(name="ln_mlp")(y + drop(mlp(y)))


def self_attention_mask(length: int, lengths=None, causal: bool = False, window: Optional[int] = None):
  """Bool mask broadcastable to (B,1,T,T): padding keys hidden, and optionally causal and/or local."""
  mask = jnp.ones((length, length), bool)
  if causal:
    mask = mask & ops.causal_mask(length)
  if window is not None:
    mask = mask & ops.local_mask(length, window)
  if lengths is not None:
    mask = mask & ops.padding_mask(lengths, length)
  return mask


class Transformer(nn.Module):
  """Encoder-only (bidirectional) or, with `causal`, decoder-only stack of `EncoderBlock`s.

  x (B,T,d_model) embedded inputs, lengths (B,) -> (hs (B,T,d_model), summary (B,d_model)); the
  summary is the mean over valid steps, or the last valid step when causal.
  """
  num_layers: int = 2
  num_heads: int = 4
  d_ff: int = 512
  dropout_rate: float = 0.0
  pre_ln: bool = False
  causal: bool = False
  positional: str = "sinusoidal"
  max_len: int = 2048
  window: Optional[int] = None  # local attention: attend within |i - j| <= window
  activation: str = "relu"
  attention_impl: str = "plain"  # 'plain' | 'chunked' | 'fused' | 'auto' (by backend)
  attention: str = "softmax"  # 'softmax' | 'uniform' (fixed uniform weights over visible keys)

  # SequenceModel may ask for the last valid step only (`last_only`): its last-step readout.
  answers_last_only = True

  @nn.compact
  def __call__(self, x, lengths=None, *, train: bool = False, last_only: bool = False):
    """With `last_only`: (h (B,1,d), h[:, 0]) at each sequence's last valid step, the last block
    computed only there (its keys and values at every step): a last-step readout's whole need,
    equal to the full stack's row (`EncoderBlock`'s query_index). Not with attention='uniform'."""
    if self.attention not in ATTENTIONS:
      raise ValueError(f"unknown attention {self.attention!r}; valid choices: {list(ATTENTIONS)}")
    x = AddPositions(self.positional, self.max_len, name="positions")(x)
    x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
    if resolve_impl(self.attention_impl) == "plain" and self.attention == "softmax":
      mask = self_attention_mask(x.shape[1], lengths, self.causal, self.window)
    else:
      mask = ops.MaskSpec(lengths, self.causal, self.window)
    last = None
    if last_only:
      last = jnp.full((x.shape[0],), x.shape[1] - 1, jnp.int32) if lengths is None else \
          jnp.clip(jnp.asarray(lengths, jnp.int32) - 1, 0, x.shape[1] - 1)
      last = last[:, None]
      if self.attention != "softmax" or self.num_layers == 0:
        raise ValueError("last_only needs softmax attention and at least one block")
    for i in range(self.num_layers):
      x = EncoderBlock(self.num_heads, self.d_ff, self.dropout_rate, self.pre_ln,
                       self.positional == "rope", self.activation, self.attention_impl,
                       self.attention, name=f"block_{i}")(
                           x, mask, train=train,
                           query_index=last if i == self.num_layers - 1 else None)
    if self.pre_ln:
      x = LayerNorm(name="final_norm")(x)
    if last_only:
      return x, x[:, 0]
    return x, (last_valid(x, lengths) if self.causal else masked_mean(x, lengths))


class TransformerDecoder(nn.Module):
  """Stack of `DecoderBlock`s. y (B,Tt,d) embedded targets, memory (B,Ts,d) -> (B,Tt,d)."""
  num_layers: int = 2
  num_heads: int = 4
  d_ff: int = 512
  dropout_rate: float = 0.0
  pre_ln: bool = False
  positional: str = "sinusoidal"
  max_len: int = 2048
  activation: str = "relu"

  @nn.compact
  def __call__(self, y, memory, source_lengths=None, *, train: bool = False):
    y = AddPositions(self.positional, self.max_len, name="positions")(y)
    y = nn.Dropout(self.dropout_rate, deterministic=not train)(y)
    self_mask = ops.causal_mask(y.shape[1])
    cross_mask = None if source_lengths is None else ops.padding_mask(source_lengths, memory.shape[1])
    for i in range(self.num_layers):
      y = DecoderBlock(self.num_heads, self.d_ff, self.dropout_rate, self.pre_ln,
                       self.positional == "rope", self.activation,
                       name=f"block_{i}")(y, memory, self_mask, cross_mask, train=train)
    if self.pre_ln:
      y = LayerNorm(name="final_norm")(y)
    return y
