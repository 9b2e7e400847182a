"""attnlab.models: thin Flax Linen modules over `attnlab.ops`, and the registry `build(config)`."""
from attnlab.models.attention import AdditiveAttentionParameters, MultiHeadAttention
from attnlab.models.heads import InputEmbedding, SequenceModel, last_valid, masked_mean
from attnlab.models.lru import LRU, LRUBlock, LRUStack
from attnlab.models.mamba import MambaMixer, MambaStack
from attnlab.models.min_rnn import MinRNNBlock, MinRNNLayer, MinRNNStack
from attnlab.models.recurrent import (GRU, LSTM, RNN, CellParameters, RecurrentLayer,
                                      RecurrentStack, final_hidden)
from attnlab.models.recurrent_blocks import RecurrentBlock, RecurrentBlockStack
from attnlab.models.registry import (MODELS, SEQ2SEQ_MODELS, SEQUENCE_MODELS, build,
                                     count_params, default_config, resolve_config)
from attnlab.models.seq2seq import RNNSeq2Seq, TransformerSeq2Seq, greedy_decode
from attnlab.models.slstm import SLSTMBlock, SLSTMLayer, SLSTMStack
from attnlab.models.transformer import (DecoderBlock, EncoderBlock, Transformer,
                                        TransformerDecoder)
