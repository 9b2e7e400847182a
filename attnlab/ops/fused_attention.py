"""Attention through `jax.nn.dot_product_attention`: cuDNN's fused kernel on GPU, XLA elsewhere.

On a CUDA backend with bf16/fp16 inputs this asks for implementation='cudnn' (FlashAttention-style,
O(T) memory); where cuDNN refuses the shapes, and on CPU/TPU, it uses JAX's XLA implementation (which
materialises the (Tq,Tk) logits). Masks as in `chunked_attention`: key_lengths (B,), causal, window,
or a bool array broadcastable to (B,N,Tq,Tk). Returns the output only (no weights). A query with no
visible key gets a zero output, as in the plain op (JAX alone would average all values there).
Falling back to XLA warns once per process and reason (RuntimeWarning: no GPU, a dtype cuDNN does
not take, or cuDNN's own refusal), since it costs O(Tq Tk) memory. Shapes: q (B,Tq,N,d), k (B,Tk,N,d), v (B,Tk,N,dv) -> (B,Tq,N,dv).
"""
import warnings
from typing import Optional

import jax
import jax.numpy as jnp

from attnlab.ops.chunked_attention import MaskSpec, dense_mask

Array = jax.Array
_WARNED = set()  # the fallback reasons already reported in this process


def uses_cudnn(dtype) -> bool:
  """Whether `fused_attention` asks for cuDNN for inputs of `dtype` on the default backend."""
  return _no_cudnn(dtype) is None


def _no_cudnn(dtype) -> Optional[str]:
  """Why cuDNN is not asked for inputs of `dtype`, or None when it is."""
  if jax.default_backend() != "gpu":
    return f"the {jax.default_backend()} backend has no cuDNN"
  if jnp.dtype(dtype) not in (jnp.bfloat16, jnp.float16):
    return f"cuDNN's fused kernel takes bfloat16/float16 inputs, not {jnp.dtype(dtype).name}"
  return None


def _warn_fallback(reason: str):
  """One RuntimeWarning per reason and process that the O(T^2)-memory XLA path runs instead."""
  if reason in _WARNED:
    return
  _WARNED.add(reason)
  warnings.warn(f"fused_attention: {reason}; using JAX's XLA attention instead, which materialises "
                "the (Tq, Tk) logits (O(T^2) memory)", RuntimeWarning, stacklevel=3)


def fused_attention(q: Array, k: Array, v: Array, mask: Optional[Array] = None,
                    bias: Optional[Array] = None, *, key_lengths: Optional[Array] = None,
                    causal: bool = False, window: Optional[int] = None) -> Array:
  """softmax(q k^T / sqrt(d) + bias) v per head, by jax.nn.dot_product_attention."""
  if mask is not None:
    mask = jnp.asarray(mask, bool)
    mask = mask.reshape((1,) * (4 - mask.ndim) + mask.shape)
  kw = dict(bias=bias, mask=mask, is_causal=causal, local_window_size=(
      None if window is None else (window, window)))
  if key_lengths is not None:
    kw["key_value_seq_lengths"] = jnp.asarray(key_lengths, jnp.int32)
  out, reason = None, _no_cudnn(q.dtype)
  if reason is None:
    try:
      out = jax.nn.dot_product_attention(q, k, v, implementation="cudnn", **kw)
    except (NotImplementedError, ValueError, RuntimeError) as e:  # shapes or masks it does not take
      reason = f"cuDNN refused these inputs ({type(e).__name__}: {str(e).splitlines()[0]})"
  if out is None:
    _warn_fallback(reason)
    out = jax.nn.dot_product_attention(q, k, v, implementation="xla", **kw)
  seen = _sees_a_key(q.shape[1], k.shape[1], mask, key_lengths, causal, window)
  return out if seen is None else jnp.where(seen, out, jnp.zeros_like(out))


def _sees_a_key(q_len, k_len, mask, key_lengths, causal, window) -> Optional[Array]:
  """Bool broadcastable to (B,Tq,N,1): whether query i has any visible key; None if all do."""
  if mask is not None:  # already O(Tq Tk): combine everything densely
    structured = dense_mask(MaskSpec(key_lengths, causal, window), q_len, k_len)
    full = mask if structured is None else mask & structured
    full = full.reshape((1,) * (4 - full.ndim) + full.shape)
    return jnp.swapaxes(full.any(axis=-1), 1, 2)[..., None]
  if key_lengths is None and window is None:
    return None  # causal alone: key 0 is always visible
  i = jnp.arange(q_len)[None, :]
  first = jnp.maximum(i - window, 0) if window is not None else jnp.zeros_like(i)
  last = jnp.full_like(i, k_len - 1)
  if key_lengths is not None:
    last = jnp.minimum(last, jnp.asarray(key_lengths)[:, None] - 1)
  if causal:
    last = jnp.minimum(last, i)
  if window is not None:
    last = jnp.minimum(last, i + window)
  return (first <= last)[:, :, None, None]
