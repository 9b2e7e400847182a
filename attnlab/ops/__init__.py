"""attnlab.ops: the pure-function core. Parameters are plain dicts of arrays; no Flax here.

Shapes: batch B, time T, input D, hidden H, heads N, head size d.
"""
from attnlab.ops.attention import (absorbed_rows_attention, additive_attention, causal_mask,
                                   local_mask, masked_softmax, padding_mask, project_keys,
                                   scaled_dot_product_attention, sequence_mask, uniform_attention)
from attnlab.ops.chunked_attention import (MaskSpec, cache_pair_block, chunked_attention,
                                           dense_mask, mask_rows)
from attnlab.ops.dense_attention import dense_attention
from attnlab.ops.fused_attention import fused_attention
from attnlab.ops.min_rnn import min_gru, min_lstm
from attnlab.ops.positions import rotary_embedding, sinusoidal_positions
from attnlab.ops.recurrent import (ACTIVATIONS, get_activation, gru, gru_cell, gru_scan, lstm,
                                   lstm_cell, lstm_scan, reverse_padded, rnn, rnn_cell, rnn_scan)
from attnlab.ops.scan import linear_recurrence
from attnlab.ops.selective_scan import causal_conv1d, selective_scan
from attnlab.ops.slstm import slstm, slstm_cell

__all__ = [
    "ACTIVATIONS", "MaskSpec", "absorbed_rows_attention", "additive_attention", "cache_pair_block",
    "causal_conv1d", "causal_mask", "chunked_attention", "dense_attention", "dense_mask",
    "fused_attention",
    "get_activation", "gru", "gru_cell", "gru_scan", "linear_recurrence", "local_mask", "lstm",
    "lstm_cell", "lstm_scan", "mask_rows", "masked_softmax", "min_gru", "min_lstm", "padding_mask",
    "project_keys", "reverse_padded", "rnn", "rnn_cell", "rnn_scan", "rotary_embedding",
    "scaled_dot_product_attention", "selective_scan", "sequence_mask", "sinusoidal_positions",
    "slstm", "slstm_cell", "uniform_attention",
]
