"""minGRU / minLSTM networks (Feng et al. 2024): residual blocks around `ops.min_gru` / `ops.min_lstm`.

The gates see only x_t, so one layer is a gated linear recurrence of its input; depth supplies the
nonlinear interaction across time. One block (d = d_model, the recurrence's hidden size too):
  x = x + Drop(minRNN(LayerNorm(x)))
  x = x + Drop(MLP(LayerNorm(x)))          MLP: Dense(d_ff) -> GELU -> Dense(d); none if d_ff is None
after an input projection to d, and a final LayerNorm (`blocks.residual_block` and `residual_stack`,
shared with the RNN/LSTM/GRU of block='residual'). Cell weights: W_x (d, kd) LeCun normal, b zero
(z = 1/2, resp. f' = i' = 1/2 at the start). `scan` picks the recurrence's form (`ops.min_gru`):
'auto' (by backend: 'blocked' on CPU, 'parallel' elsewhere), 'blocked' (blocks of time with a
hand-written backward pass; on a 2-core CPU at T=1000, H=128 the fastest, see BENCHMARKS.md),
'sequential' (one `lax.scan` step per time step) or 'parallel' (the paper's log-space scan).
Everything is causal, so padding after a sequence never changes its valid outputs.
"""
import flax.linen as nn

from attnlab import ops
from attnlab.models.blocks import residual_block, residual_stack

MIN_CELLS = {"mingru": (ops.min_gru, 2), "minlstm": (ops.min_lstm, 3)}


class MinRNNLayer(nn.Module):
  """One minGRU / minLSTM layer. x (B,T,D) -> (hs (B,T,H), h_T (B,H))."""
  cell: str = "mingru"
  hidden_size: int = 128
  scan: str = "auto"
  unroll: int = 1

  @nn.compact
  def __call__(self, x, lengths=None):
    if self.cell not in MIN_CELLS:
      raise ValueError(f"unknown cell {self.cell!r}; valid choices: {list(MIN_CELLS)}")
    op, gates = MIN_CELLS[self.cell]
    params = _CellWeights(gates * self.hidden_size, name="cell")(x.shape[-1])
    return op(params, x, lengths=lengths, method=self.scan, unroll=self.unroll)


class _CellWeights(nn.Module):
  """W_x (D, width) LeCun normal and b (width,) zero, as the dict the ops take."""
  width: int

  @nn.compact
  def __call__(self, in_dim: int) -> dict:
    return {"W_x": self.param("W_x", nn.initializers.lecun_normal(), (in_dim, self.width)),
            "b": self.param("b", nn.initializers.zeros, (self.width,))}


class MinRNNBlock(nn.Module):
  """x + Drop(minRNN(LN(x))), then x + Drop(MLP(LN(x))). x (B,T,d) -> (B,T,d)."""
  cell: str = "mingru"
  d_ff: int = 256
  dropout_rate: float = 0.0
  scan: str = "auto"
  unroll: int = 1

  @nn.compact
  def __call__(self, x, lengths=None, *, train: bool = False):
    rnn = MinRNNLayer(self.cell, x.shape[-1], self.scan, self.unroll, name="rnn")
    return residual_block(x, lambda y: rnn(y, lengths)[0], d_ff=self.d_ff,
                          dropout_rate=self.dropout_rate, train=train)


class MinRNNStack(nn.Module):
  """Input projection, `num_layers` minRNN blocks, final LayerNorm.

  x (B,T,D), lengths -> (hs (B,T,d_model), summary (B,d_model) = hs at each sequence's last step).
  """
  cell: str = "mingru"
  d_model: int = 128
  num_layers: int = 2
  d_ff: int = 256
  dropout_rate: float = 0.0
  scan: str = "auto"
  unroll: int = 1

  @nn.compact
  def __call__(self, x, lengths=None, *, train: bool = False):
    block = lambda name: MinRNNBlock(self.cell, self.d_ff, self.dropout_rate, self.scan,
                                     self.unroll, name=name)
    return residual_stack(x, lengths, block, self.d_model, self.num_layers, train)
