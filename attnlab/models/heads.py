"""What every sequence model shares: input embedding, pooling, output head, and `SequenceModel`.

A `SequenceModel` is embed -> backbone -> (pool) -> head, so one task can be trained with every
backbone: tokens (B,T) int or real-valued inputs (B,T,C) float in; per-sequence outputs (B,K) or
per-step outputs (B,T,K) out (K = classes, or 1 for regression).
"""
from typing import Optional

import flax.linen as nn
import jax.numpy as jnp

OUTPUTS = ("sequence", "step")
POOLINGS = ("summary", "last", "mean")


def last_valid(hs, lengths=None):
  """hs (B,T,F) -> (B,F), the output at step lengths[b] - 1 (the last step if lengths is None)."""
  if lengths is None:
    return hs[:, -1]
  idx = jnp.clip(jnp.asarray(lengths) - 1, 0, hs.shape[1] - 1)
  return jnp.take_along_axis(hs, idx[:, None, None], axis=1)[:, 0]


def masked_mean(hs, lengths=None):
  """hs (B,T,F) -> (B,F), the mean over each sequence's first lengths[b] steps."""
  if lengths is None:
    return hs.mean(axis=1)
  valid = (jnp.arange(hs.shape[1])[None, :] < jnp.asarray(lengths)[:, None]).astype(hs.dtype)
  total = jnp.einsum("btf,bt->bf", hs, valid)
  return total / jnp.maximum(valid.sum(axis=1, keepdims=True), 1.0)


THIN_INPUTS = 4  # real inputs with at most this many channels are projected by broadcast products


class InputProjection(nn.Module):
  """`nn.Dense(features)` (same 'kernel' (C,F) and 'bias' (F,), LeCun normal / zero init) that, for
  C <= THIN_INPUTS channels (adding's C=2), sums C broadcast products x[..., c] * kernel[c] instead
  of a product with a C-long contraction (issue 30: a K=2 product cost far more than its arithmetic
  on CPU). x (...,C) -> (...,F)."""
  features: int

  @nn.compact
  def __call__(self, x):
    channels = x.shape[-1]
    kernel = self.param("kernel", nn.initializers.lecun_normal(), (channels, self.features),
                        jnp.float32)
    bias = self.param("bias", nn.initializers.zeros, (self.features,), jnp.float32)
    x, kernel, bias = (a.astype(jnp.result_type(x, kernel, bias)) for a in (x, kernel, bias))
    if channels > THIN_INPUTS:
      return x @ kernel + bias
    out = bias
    for c in range(channels):
      out = out + x[..., c:c + 1] * kernel[c]
    return out


class InputEmbedding(nn.Module):
  """Tokens (B,T) -> (B,T,features) by lookup; real inputs (B,T,C) -> Dense, or unchanged if features is None.

  Token embeddings are N(0, 1/features) and, with `scale_tokens`, multiplied by sqrt(features) as in
  Vaswani et al. 2017 (unit-variance inputs to the first block).
  """
  vocab_size: Optional[int] = None
  features: Optional[int] = None
  scale_tokens: bool = False

  def setup(self):
    if self.vocab_size is not None:
      if self.features is None:
        raise ValueError("InputEmbedding: token inputs need `features` (the embedding size)")
      self.table = nn.Embed(self.vocab_size, self.features,
                            embedding_init=nn.initializers.normal(self.features**-0.5))
    elif self.features is not None:
      self.proj = InputProjection(self.features)

  def __call__(self, inputs):
    if self.vocab_size is not None:
      if not jnp.issubdtype(inputs.dtype, jnp.integer) or inputs.ndim != 2:
        raise ValueError(f"token inputs must be int (B,T); got {inputs.dtype} {inputs.shape}")
      x = self.table(inputs)
      return x * jnp.sqrt(self.features).astype(x.dtype) if self.scale_tokens else x
    if jnp.issubdtype(inputs.dtype, jnp.integer) or inputs.ndim != 3:
      raise ValueError("real-valued inputs must be float (B,T,C) (set model.vocab_size for tokens); "
                       f"got {inputs.dtype} {inputs.shape}")
    return self.proj(inputs) if self.features is not None else inputs

  def attend(self, x):
    """Logits against the token table (weight tying): x (...,features) -> (...,vocab_size)."""
    return self.table.attend(x)


class SequenceModel(nn.Module):
  """embed -> backbone -> pool -> Dense head.

  `backbone(x, lengths, train=...)` returns (hs (B,T,F), summary (B,F)). `output='sequence'` pools
  with `pooling` ('summary' = the backbone's own summary, e.g. an RNN's final state; 'last'; 'mean')
  and returns (B,num_outputs); `output='step'` returns (B,T,num_outputs).
  """
  embed: nn.Module
  backbone: nn.Module
  num_outputs: int
  output: str = "sequence"
  pooling: str = "summary"

  def setup(self):
    if self.output not in OUTPUTS:
      raise ValueError(f"unknown output {self.output!r}; valid choices: {list(OUTPUTS)}")
    if self.pooling not in POOLINGS:
      raise ValueError(f"unknown pooling {self.pooling!r}; valid choices: {list(POOLINGS)}")
    self.head = nn.Dense(self.num_outputs)

  def __call__(self, inputs, lengths=None, *, train: bool = False):
    """inputs (B,T) int or (B,T,C) float, lengths (B,) -> (B,K) or (B,T,K)."""
    return self.from_embeddings(self.embed(inputs), lengths, train=train)

  def embed_inputs(self, inputs):
    """The backbone's inputs x_t (B,T,E): differentiate through `from_embeddings` for dL/dx_t."""
    return self.embed(inputs)

  def from_embeddings(self, x, lengths=None, *, train: bool = False):
    if self._reads_last_step_only():  # the backbone computes only what the readout reads
      _, last = self.backbone(x, lengths, train=train, last_only=True)
      return self.head(last)
    hs, summary = self.backbone(x, lengths, train=train)
    if self.output == "step":
      return self.head(hs)
    pooled = {"summary": lambda: summary, "last": lambda: last_valid(hs, lengths),
              "mean": lambda: masked_mean(hs, lengths)}[self.pooling]()
    return self.head(pooled)

  def _reads_last_step_only(self) -> bool:
    """`reads_last_step` of this model, from a backbone that can compute that step alone
    (`answers_last_only`: the Transformer), with no intermediates being collected (attention maps
    need every row)."""
    backbone = self.backbone
    return (getattr(backbone, "answers_last_only", False)
            and reads_last_step(self.output, self.pooling, getattr(backbone, "causal", False),
                                getattr(backbone, "attention", None),
                                getattr(backbone, "num_layers", 0))
            and not self.is_mutable_collection("intermediates"))


def reads_last_step(output: str, pooling: str, causal: bool, attention, num_layers: int) -> bool:
  """Whether a Transformer under `SequenceModel` is asked for its last valid step alone: a
  per-sequence output read there ('last', or a causal backbone's 'summary'), softmax attention
  and at least one block."""
  last = pooling == "last" or (pooling == "summary" and bool(causal))
  return output == "sequence" and last and attention == "softmax" and (num_layers or 0) > 0
