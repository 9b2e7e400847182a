"""The RNN, LSTM and GRU in minGRU's residual block (registry field block='residual').

The comparison's single-layer cells and its minGRU/LRU/Transformer differ in two ways at once: the
recurrence and the block around it. Here the recurrence of `recurrent.RecurrentLayer` (hidden size
d = d_model, so d in and d out) is the mixer of `blocks.residual_block`, the block minGRU uses:
  x = x + Drop(cell(LayerNorm(x)))
  x = x + Drop(MLP(LayerNorm(x)))         MLP: Dense(d_ff) -> GELU -> Dense(d); none if d_ff is None
after an input projection to d, `num_layers` blocks and a final LayerNorm. The cell's init is that
of `recurrent.CellParameters` (orthogonal or identity W_h, forget/carry biases, ...). Causal only
(one direction): padding after a sequence never changes its valid outputs.
"""
from typing import Optional

import flax.linen as nn

from attnlab.models.blocks import residual_block, residual_stack
from attnlab.models.recurrent import RecurrentLayer, RecurrentStack


class RecurrentBlock(nn.Module):
  """x + Drop(layer(LN(x))), then x + Drop(MLP(LN(x))). x (B,T,d) -> (B,T,d).

  `layer` is an unbound `RecurrentLayer` of hidden size d (made with parent=None); it becomes this
  block's submodule 'layer'.
  """
  layer: RecurrentLayer
  d_ff: Optional[int] = None
  dropout_rate: float = 0.0

  @nn.compact
  def __call__(self, x, lengths=None, *, train: bool = False):
    if self.layer.hidden_size != x.shape[-1]:
      raise ValueError(f"RecurrentBlock: the cell's hidden_size {self.layer.hidden_size} must "
                       f"equal the block width {x.shape[-1]}")
    return residual_block(x, lambda y: self.layer(y, lengths)[0], d_ff=self.d_ff,
                          dropout_rate=self.dropout_rate, train=train)


class RecurrentBlockStack(RecurrentStack):
  """Input projection to hidden_size, `num_layers` `RecurrentBlock`s, final LayerNorm.

  x (B,T,D), lengths -> (hs (B,T,H), summary (B,H) = hs at each sequence's last valid step).
  The fields are `RecurrentStack`'s (bidirectional must be False) and the MLP width `d_ff`.
  """
  d_ff: Optional[int] = None

  @nn.compact
  def __call__(self, x, lengths=None, *, train: bool = False):
    if self.bidirectional:
      raise ValueError("model.bidirectional=True needs model.block='cell': the residual blocks "
                       "are causal")
    layer_kw = dict(cell=self.cell, hidden_size=self.hidden_size, activation=self.activation,
                    reset_after=self.reset_after, recurrent_scale=self.recurrent_scale,
                    forget_bias=self.forget_bias, chrono_max=self.chrono_max,
                    carry_bias=self.carry_bias, unroll=self.unroll,
                    recurrent_init=self.recurrent_init, input_std=self.input_std)
    block = lambda name: RecurrentBlock(RecurrentLayer(**layer_kw, parent=None), self.d_ff,
                                        self.dropout_rate, name=name)
    return residual_stack(x, lengths, block, self.hidden_size, self.num_layers, train)
