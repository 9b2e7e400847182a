"""What a model carries from one step to the next at inference: its recurrent state, or the
Transformer's KV cache, in floats and bytes (float32 = 4 bytes unless told).

Per sequence, with L = num_layers (x2 when bidirectional):
  rnn, gru        L x H                    (h)
  lstm            L x 2H                   (h, c)
  lru             L x 2N                   (N complex states: real and imaginary parts)
  mamba           L x (E N + E (K - 1))    (E = expand x d_model channels of an N-state S6, and the
                                            last K - 1 inputs of the width-K causal conv)
  mingru, minlstm L x D                    (h of width d_model; the gates do not depend on it)
  slstm           L x 4D                   (c, n, m, h)
  transformer     L x 2 T D                (keys and values of all T positions: grows with T)
Arora et al. 2023 (Zoology) tie multi-query recall to this number: a state of fixed size can hold
only so many key-value pairs, while the KV cache holds them all.
"""

RECURRENT = ("rnn", "lstm", "gru", "lru", "mamba", "mingru", "minlstm", "slstm")


def state_floats(model, seq_len: int) -> int:
  """Floats per sequence of `model` (a model config: name and its size fields) after seq_len steps."""
  name = model["name"]
  layers = int(model.get("num_layers", 1)) * (2 if model.get("bidirectional") else 1)
  if name in ("rnn", "gru"):
    return layers * model["hidden_size"]
  if name == "lstm":
    return layers * 2 * model["hidden_size"]
  if name == "lru":
    return layers * 2 * model["state_size"]
  if name == "mamba":
    inner = model["expand"] * model["d_model"]
    return layers * (inner * model["d_state"] + inner * (model["conv_width"] - 1))
  if name in ("mingru", "minlstm"):
    return layers * model["d_model"]
  if name == "slstm":
    return layers * 4 * model["d_model"]
  if name == "transformer":
    return layers * 2 * seq_len * model["d_model"]
  raise ValueError(f"state_floats: no state size known for model {name!r}; known: "
                   f"{', '.join(RECURRENT + ('transformer',))}")


def state_bytes(model, seq_len: int, bytes_per_float: int = 4) -> dict:
  """{"kind": "state" | "kv_cache", "floats", "bytes"} of `model` (see the module doc)."""
  floats = state_floats(model, seq_len)
  return {"kind": "kv_cache" if model["name"] == "transformer" else "state", "floats": floats,
          "bytes": floats * bytes_per_float}
