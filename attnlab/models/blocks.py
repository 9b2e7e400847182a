"""The pre-LayerNorm residual block shared by the networks built of blocks around a sequence mixer.

minGRU/minLSTM (`min_rnn`) and the RNN/LSTM/GRU with block='residual' (`recurrent_blocks`) use it,
so their blocks differ only in the mixer. One block (d = d_model, the mixer's width in and out):
  x = x + Drop(mixer(LayerNorm(x)))       mixer: (B,T,d) -> (B,T,d)
  x = x + Drop(MLP(LayerNorm(x)))         MLP: Dense(d_ff) -> GELU -> Dense(d); none if d_ff is None
and a stack: Dense input projection to d, `num_layers` blocks, a final LayerNorm; its summary is the
output at each sequence's last valid step. Both are functions called inside a module's compact
method, so the LayerNorms and the MLP become that module's submodules ('ln_rnn', 'mlp', 'ln_mlp').
"""
from typing import Callable, Optional

import flax.linen as nn

from attnlab.models.heads import last_valid
from attnlab.models.transformer import MLP


def residual_block(x, mix: Callable, *, d_ff: Optional[int], dropout_rate: float, train: bool):
  """x (B,T,d) -> (B,T,d): x + Drop(mix(LN(x))), then x + Drop(MLP(LN(x))) if d_ff."""
  drop = lambda y: nn.Dropout(dropout_rate, deterministic=not train)(y)
  x = x + drop(mix(nn.LayerNorm(name="ln_rnn")(x)))
  if d_ff:
    x = x + drop(MLP(d_ff, "gelu", name="mlp")(nn.LayerNorm(name="ln_mlp")(x)))
  return x


def residual_stack(x, lengths, make_block: Callable, d_model: int, num_layers: int, train: bool):
  """x (B,T,D) -> (hs (B,T,d_model), summary (B,d_model)); make_block(name) gives block `name`."""
  x = nn.Dense(d_model, name="input_proj")(x)
  for i in range(num_layers):
    x = make_block(f"block_{i}")(x, lengths, train=train)
  x = nn.LayerNorm(name="final_norm")(x)
  return x, last_valid(x, lengths)
