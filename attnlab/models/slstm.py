"""sLSTM network (xLSTM, Beck et al. 2024): residual blocks around `ops.slstm`.

One block (the xLSTM code's sLSTM block with its gated feed-forward, d = d_model = H heads x size):
  x = x + Drop(HeadNorm(sLSTM(LayerNorm(x))))         HeadNorm: LayerNorm within each head
  x = x + Drop(Dense(d)(GELU(a) * b)),  [a b] = Dense(2 d_ff)(LayerNorm(x))   (d_ff ~ 4d/3)
after an input projection to d, and a final LayerNorm. attnlab leaves out the block's optional causal
convolution in front of the i and f gates, and its input projections are dense rather than per head.
Init: W_x LeCun normal; R zero (the recurrence through h is learnt from nothing, as in the xLSTM
code); biases zero except the forget gate's, spread over units so that f = sigmoid(linspace(3, 6))
(f~ = log f for forget='exp'): the cell starts out remembering for ~20 to ~400 steps.
Everything is causal, so padding after a sequence never changes its valid outputs.
"""
import flax.linen as nn
import jax
import jax.numpy as jnp

from attnlab import ops
from attnlab.models.heads import last_valid


def slstm_bias(forget: str):
  """Init for b (4H,) in gate order i, f, z, o."""

  def init(key, shape, dtype=jnp.float32):
    hidden = shape[0] // 4
    f = jnp.linspace(3.0, 6.0, hidden, dtype=dtype)
    f = f if forget == "sigmoid" else -jax.nn.softplus(-f)  # log sigmoid: the same initial f
    return jnp.zeros((4, hidden), dtype).at[1].set(f).reshape(-1)

  return init


class SLSTMLayer(nn.Module):
  """One sLSTM layer of `num_heads` heads. x (B,T,D) -> (hs (B,T,H), final (h, c, n, m))."""
  hidden_size: int = 128
  num_heads: int = 4
  forget: str = "sigmoid"
  unroll: int = 1

  @nn.compact
  def __call__(self, x, lengths=None):
    h, heads = self.hidden_size, self.num_heads
    if h % heads:
      raise ValueError(f"sLSTM: hidden size {h} must be divisible by num_heads={heads}")
    params = _SLSTMWeights(h, heads, self.forget, name="cell")(x.shape[-1])
    return ops.slstm(params, x, lengths=lengths, forget=self.forget, unroll=self.unroll)


class _SLSTMWeights(nn.Module):
  hidden_size: int
  num_heads: int
  forget: str

  @nn.compact
  def __call__(self, in_dim: int) -> dict:
    h, n = self.hidden_size, self.num_heads
    return {"W_x": self.param("W_x", nn.initializers.lecun_normal(), (in_dim, 4 * h)),
            "R": self.param("R", nn.initializers.zeros, (4, n, h // n, h // n)),
            "b": self.param("b", slstm_bias(self.forget), (4 * h,))}


class GatedMLP(nn.Module):
  """Dense(d)(GELU(a) * b) with [a b] = Dense(2 d_ff)(x)."""
  d_ff: int

  @nn.compact
  def __call__(self, x):
    a, b = jnp.split(nn.Dense(2 * self.d_ff)(x), 2, axis=-1)
    return nn.Dense(x.shape[-1])(nn.gelu(a) * b)


class SLSTMBlock(nn.Module):
  num_heads: int = 4
  d_ff: int = 171
  forget: str = "sigmoid"
  dropout_rate: float = 0.0
  unroll: int = 1

  @nn.compact
  def __call__(self, x, lengths=None, *, train: bool = False):
    drop = lambda y: nn.Dropout(self.dropout_rate, deterministic=not train)(y)
    b, t, d = x.shape
    hs, _ = SLSTMLayer(d, self.num_heads, self.forget, self.unroll, name="slstm")(
        nn.LayerNorm(name="ln_slstm")(x), lengths)
    hs = hs.reshape(b, t, self.num_heads, d // self.num_heads)
    hs = nn.LayerNorm(reduction_axes=-1, feature_axes=(-2, -1), name="head_norm")(hs)
    x = x + drop(hs.reshape(b, t, d))
    return x + drop(GatedMLP(self.d_ff, name="mlp")(nn.LayerNorm(name="ln_mlp")(x)))


class SLSTMStack(nn.Module):
  """Input projection, `num_layers` sLSTM blocks, final LayerNorm.

  x (B,T,D), lengths -> (hs (B,T,d_model), summary (B,d_model) = hs at each sequence's last step).
  `d_ff` None is round(4 d_model / 3), the paper's projection factor 4/3 for sLSTM blocks.
  """
  d_model: int = 128
  num_heads: int = 4
  num_layers: int = 2
  d_ff: int = None
  forget: str = "sigmoid"
  dropout_rate: float = 0.0
  unroll: int = 1

  @nn.compact
  def __call__(self, x, lengths=None, *, train: bool = False):
    d_ff = self.d_ff or round(4 * self.d_model / 3)
    x = nn.Dense(self.d_model, name="input_proj")(x)
    for i in range(self.num_layers):
      x = SLSTMBlock(self.num_heads, d_ff, self.forget, self.dropout_rate, self.unroll,
                     name=f"block_{i}")(x, lengths, train=train)
    x = nn.LayerNorm(name="final_norm")(x)
    return x, last_valid(x, lengths)
