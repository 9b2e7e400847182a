"""Special token ids shared by the token tasks.

Padded token tasks use PAD = 0. The seq2seq tasks (`reverse`, `sort`) also use
BOS and EOS, and their data symbols start at FIRST_SYMBOL.
"""

PAD = 0  # padding; never a real input or target token
BOS = 1  # start of the decoder input (teacher forcing)
EOS = 2  # end of a target sequence; counts in the loss
FIRST_SYMBOL = 3  # data symbols are FIRST_SYMBOL, FIRST_SYMBOL + 1, ...
