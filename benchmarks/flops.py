"""Analytic FLOP counts of one training step (forward + backward), for MFU.

Only matrix products count (2 FLOPs per multiply-add); elementwise work, softmax and the optimizer
are left out, as in the usual MFU convention. The backward pass of a product y = x W costs two
products of the same size (dx = dy W^T, dW = x^T dy), so a training step is 3x the forward FLOPs.
Shapes: batch B, length T, input D, hidden H, model width d, heads N, MLP width d_ff.

  LSTM      forward 2 B T (D + H) 4H       (four gate blocks from x_t and h_{t-1})
  GRU       forward 2 B T (D + H) 3H
  encoder   forward 2 B T (4 d^2 + 2 d d_ff) + 4 B T^2 d
            (q, k, v and output projections; the MLP; q k^T and weights x v over all heads)
            causal attention counts T^2 / 2 of the T^2 term (the masked half is skipped only by
            chunked attention; the count is of useful FLOPs either way)
MFU = training FLOPs / step time / the measured f32 matmul rate (`timing.matmul_peak`).
"""


def lstm(batch, length, d_in, hidden) -> float:
  return 3 * 2 * batch * length * (d_in + hidden) * 4 * hidden


def gru(batch, length, d_in, hidden) -> float:
  return 3 * 2 * batch * length * (d_in + hidden) * 3 * hidden


def encoder_layer(batch, length, d_model, d_ff, causal: bool = False) -> float:
  dense = 2 * batch * length * (4 * d_model**2 + 2 * d_model * d_ff)
  attention = 4 * batch * length**2 * d_model * (0.5 if causal else 1.0)
  return 3 * (dense + attention)


def mfu(train_flops: float, seconds: float, peak_gflops: float) -> float:
  return train_flops / seconds / (peak_gflops * 1e9)
