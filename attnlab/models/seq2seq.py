"""Encoder-decoder models: RNN encdec (Cho et al. 2014), RNNsearch (Bahdanau et al. 2015), Transformer.

Every seq2seq model has the same interface:
  __call__(source (B,Ts), target_inputs (B,Tt), source_lengths=None, train=False) -> logits (B,Tt,V)
      teacher forcing: target_inputs are BOS followed by the target shifted right.
  encode(source, source_lengths) -> memory (a pytree);  initial_state(memory, max_len) -> state;
  decode_step(memory, state, token (B,)) -> (logits (B,V), state)
and `greedy_decode(model, variables, source, ...)` runs the last three for evaluation.

RNN models: e_t = Embed(y_{t-1}); s_0 = tanh(W_s summary) where summary is the encoder's final state
(c_0 = 0 for an LSTM decoder); context c_t = summary (encdec) or additive attention of s_{t-1} over
the encoder states (RNNsearch, bidirectional encoder as in the paper; its weights (B,Tt,Ts) are sown
into 'intermediates' as 'attention_weights');
s_t = cell(s_{t-1}, [e_t; c_t]);  logits_t = W_o tanh(W_r [s_t; c_t; e_t]) (a tanh readout where the
paper uses maxout). Init: cells as in `recurrent.py`, attention as in `attention.py`, Dense layers
LeCun normal with zero biases, embeddings N(0, 1/E).
"""
from typing import Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

from attnlab import ops
from attnlab.models.attention import AdditiveAttentionParameters
from attnlab.models.heads import InputEmbedding
from attnlab.models.recurrent import CellParameters, RecurrentStack, final_hidden
from attnlab.models.transformer import Transformer, TransformerDecoder


def _cell_step(cell: str, params: dict, state, x):
  if cell == "rnn":
    return ops.rnn_cell(params, state, x)
  if cell == "lstm":
    return ops.lstm_cell(params, state, x)
  return ops.gru_cell(params, state, x)


def _decoder_step(cell, cell_params, attn_params, memory, state, e_t):
  """One RNN decoder step: (state, e_t (B,E)) -> (state, (s_t (B,H), context (B,C), weights (B,Ts)))."""
  if attn_params is None:
    context, weights = memory["summary"], None
  else:
    context, weights = ops.additive_attention(attn_params, final_hidden(state), memory["states"],
                                              mask=memory["mask"],
                                              projected_keys=memory["projected_keys"])
  state = _cell_step(cell, cell_params, state, jnp.concatenate([e_t, context], axis=-1))
  return state, (final_hidden(state), context, weights)


class RNNSeq2Seq(nn.Module):
  """RNN encoder-decoder; `attention=True` makes it RNNsearch."""
  vocab_size: int
  target_vocab_size: Optional[int] = None  # default: vocab_size (shared vocabulary)
  embed_dim: int = 64
  hidden_size: int = 128
  cell: str = "gru"
  attention: bool = False
  attention_size: Optional[int] = None  # default: hidden_size
  encoder_layers: int = 1
  bidirectional: Optional[bool] = None  # default: True with attention, as in Bahdanau et al.
  dropout_rate: float = 0.0

  def setup(self):
    bidirectional = self.attention if self.bidirectional is None else self.bidirectional
    enc_dim = self.hidden_size * (2 if bidirectional else 1)
    self.source_embed = InputEmbedding(self.vocab_size, self.embed_dim)
    self.target_embed = InputEmbedding(self.target_vocab_size or self.vocab_size, self.embed_dim)
    self.encoder = RecurrentStack(self.cell, self.hidden_size, self.encoder_layers, bidirectional,
                                  self.dropout_rate)
    self.init_state = nn.Dense(self.hidden_size)
    self.decoder_cell = CellParameters(self.cell, self.embed_dim + enc_dim, self.hidden_size)
    if self.attention:
      self.attention_params = AdditiveAttentionParameters(self.hidden_size, enc_dim,
                                                          self.attention_size or self.hidden_size)
    self.readout = nn.Dense(self.hidden_size)
    self.logits = nn.Dense(self.target_vocab_size or self.vocab_size)
    self.dropout = nn.Dropout(self.dropout_rate)

  def encode(self, source, source_lengths=None, *, train: bool = False):
    states, summary = self.encoder(self.source_embed(source), source_lengths, train=train)
    mask = jnp.ones(source.shape, bool) if source_lengths is None else ops.sequence_mask(
        source_lengths, source.shape[1])
    memory = {"states": states, "summary": summary, "mask": mask}
    if self.attention:
      memory["projected_keys"] = ops.project_keys(self.attention_params(), states)
    return memory

  def initial_state(self, memory, max_len: Optional[int] = None):
    del max_len  # the RNN state does not depend on the output length
    h0 = jnp.tanh(self.init_state(memory["summary"]))
    return (h0, jnp.zeros_like(h0)) if self.cell == "lstm" else h0

  def _readout(self, s, context, e, train: bool):
    y = jnp.tanh(self.readout(jnp.concatenate([s, context, e], axis=-1)))
    return self.logits(self.dropout(y, deterministic=not train))

  def __call__(self, source, target_inputs, source_lengths=None, *, train: bool = False):
    memory = self.encode(source, source_lengths, train=train)
    e = self.target_embed(target_inputs)  # (B,Tt,E)
    cell_params = self.decoder_cell()
    attn_params = self.attention_params() if self.attention else None
    step = lambda state, e_t: _decoder_step(self.cell, cell_params, attn_params, memory, state, e_t)
    _, (s, context, weights) = jax.lax.scan(step, self.initial_state(memory), jnp.swapaxes(e, 0, 1))
    if weights is not None:  # (B,Tt,Ts): which source steps each output step attended to
      self.sow("intermediates", "attention_weights", jnp.swapaxes(weights, 0, 1))
    return self._readout(jnp.swapaxes(s, 0, 1), jnp.swapaxes(context, 0, 1), e, train)

  def decode_step(self, memory, state, token):
    e = self.target_embed(token[:, None])[:, 0]
    attn_params = self.attention_params() if self.attention else None
    state, (s, context, _) = _decoder_step(self.cell, self.decoder_cell(), attn_params, memory, state, e)
    return self._readout(s, context, e, False), state


class TransformerSeq2Seq(nn.Module):
  """Encoder-decoder Transformer (Vaswani et al. 2017)."""
  vocab_size: int
  target_vocab_size: Optional[int] = None
  d_model: int = 128
  num_heads: int = 4
  num_layers: int = 2
  d_ff: int = 512
  dropout_rate: float = 0.0
  pre_ln: bool = False
  positional: str = "sinusoidal"
  max_len: int = 2048
  activation: str = "relu"

  def setup(self):
    kw = dict(num_layers=self.num_layers, num_heads=self.num_heads, d_ff=self.d_ff,
              dropout_rate=self.dropout_rate, pre_ln=self.pre_ln, positional=self.positional,
              max_len=self.max_len, activation=self.activation)
    self.source_embed = InputEmbedding(self.vocab_size, self.d_model, scale_tokens=True)
    self.target_embed = InputEmbedding(self.target_vocab_size or self.vocab_size, self.d_model,
                                       scale_tokens=True)
    self.encoder = Transformer(**kw)
    self.decoder = TransformerDecoder(**kw)
    self.logits = nn.Dense(self.target_vocab_size or self.vocab_size)

  def encode(self, source, source_lengths=None, *, train: bool = False):
    states, _ = self.encoder(self.source_embed(source), source_lengths, train=train)
    return {"states": states, "lengths": source_lengths}

  def decode_logits(self, memory, target_inputs, *, train: bool = False):
    y = self.decoder(self.target_embed(target_inputs), memory["states"], memory["lengths"], train=train)
    return self.logits(y)

  def __call__(self, source, target_inputs, source_lengths=None, *, train: bool = False):
    return self.decode_logits(self.encode(source, source_lengths, train=train), target_inputs,
                              train=train)

  def initial_state(self, memory, max_len: int):
    """The tokens decoded so far, in a fixed buffer (B,max_len), and the next position."""
    batch = memory["states"].shape[0]
    return {"tokens": jnp.zeros((batch, max_len), jnp.int32), "pos": jnp.zeros((), jnp.int32)}

  def decode_step(self, memory, state, token):
    """Re-runs the causal decoder over the buffer (no cache: O(T^2) per sequence, fine for evaluation)."""
    tokens = jax.lax.dynamic_update_slice(state["tokens"], token[:, None].astype(jnp.int32),
                                          (0, state["pos"]))
    logits = self.decode_logits(memory, tokens)
    logits = jax.lax.dynamic_index_in_dim(logits, state["pos"], axis=1, keepdims=False)
    return logits, {"tokens": tokens, "pos": state["pos"] + 1}


def greedy_decode(model, variables, source, source_lengths=None, *, max_len: int, bos_id: int = 1,
                  eos_id: Optional[int] = None, pad_id: int = 0):
  """Greedy decoding for any seq2seq model. source (B,Ts) -> tokens (B,max_len) int32.

  Decoding starts from `bos_id`; with `eos_id`, every token after the first EOS becomes `pad_id`.
  """
  memory = model.apply(variables, source, source_lengths, method="encode")
  state = model.apply(variables, memory, max_len, method="initial_state")

  def step(carry, _):
    state, token = carry
    logits, state = model.apply(variables, memory, state, token, method="decode_step")
    token = jnp.argmax(logits, axis=-1).astype(jnp.int32)
    return (state, token), token

  bos = jnp.full((source.shape[0],), bos_id, jnp.int32)
  _, tokens = jax.lax.scan(step, (state, bos), None, length=max_len)
  tokens = tokens.T
  if eos_id is not None:
    after_eos = jnp.cumsum(tokens == eos_id, axis=1) - (tokens == eos_id) > 0
    tokens = jnp.where(after_eos, pad_id, tokens)
  return tokens
