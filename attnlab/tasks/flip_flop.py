"""Flip-flop language `flip_flop` (Liu et al. 2023, "Exposing attention glitches with flip-flop
language modeling").

T = seq_len tokens (even) are T/2 instruction-bit pairs. The first instruction is a write and the
last a read; the others are drawn i.i.d.: write with p_write, ignore with p_ignore, read with
p_read. The bit after a write or an ignore is uniform; the bit after a read is the bit of the last
write, and only those bits are scored. The paper's FFL(p_i) is p_ignore=p_i with p_write = p_read
= (1 - p_i) / 2 (p_write and p_read None here): it trains on FFL(0.8) (the default) at T=512 and
tests on sparse FFL(0.98) and dense FFL(0.1) sequences; a single wrong read counts.

  inputs : w b  x b  x b  ..  r ?      (x in {w, i, r}; a read's bit is hidden: ?)
  targets: 0 everywhere but at each ?, where it is the last written bit (mask 1 there only)

The paper trains a language model on every next token; here the read's bit is replaced by the
query token ? and the target sits on it, so a bidirectional model cannot see the answer, and an
earlier read's bit is not in the input (it only repeated a write).

Tokens: 0 PAD (reserved, unused), 1 w, 2 i, 3 r, 4 bit 0, 5 bit 1, 6 ?. Classes: the bit, 0 or 1.

Batch keys (n examples):
  inputs   int32   (n, T)
  targets  int32   (n, T)
  mask     float32 (n, T)  1.0 on the read bits only
  lengths  int32   (n,)    all T

Baseline: ln 2 per read, a uniform guess (the written bits are uniform; chance accuracy 0.5).
Solved: eval_score, the accuracy over read bits, >= 0.99; the final evaluation
(config.final_eval_sequences) counts the wrong reads exactly (final_errors of final_scored).
"""

import math

import numpy as np

from attnlab.tasks import base

DEFAULTS = dict(seq_len=512, p_ignore=0.8, p_write=None, p_read=None)
WRITE, IGNORE, READ = 1, 2, 3  # instruction tokens
FIRST_BIT = 4  # token of bit 0; bit 1 is FIRST_BIT + 1
QUERY = 6  # a read's hidden bit


def resolve(p):
  seq_len = base.check_int('seq_len', p['seq_len'], 4)
  if seq_len % 2:
    raise ValueError(f'seq_len={seq_len!r} is invalid; expected an even integer (pairs)')
  out = dict(seq_len=seq_len, p_ignore=base.check_float('p_ignore', p['p_ignore'], 0.0, 1.0))
  for key in ('p_write', 'p_read'):
    out[key] = None if p[key] is None else base.check_float(key, p[key], 0.0, 1.0)
  probabilities(out)  # ValueError unless they add up to 1
  return out


def probabilities(p):
  """(p_write, p_ignore, p_read) of the i.i.d. instructions; None shares what is left equally."""
  given = [p[k] for k in ('p_write', 'p_read') if p[k] is not None]
  rest = 1.0 - p['p_ignore'] - sum(given)
  share = rest / (2 - len(given)) if len(given) < 2 else 0.0
  p_write = share if p['p_write'] is None else p['p_write']
  p_read = share if p['p_read'] is None else p['p_read']
  if min(p_write, p_read) < -1e-9 or abs(p_write + p['p_ignore'] + p_read - 1.0) > 1e-9:
    raise ValueError(f'p_write={p["p_write"]!r}, p_ignore={p["p_ignore"]!r}, '
                     f'p_read={p["p_read"]!r} are invalid; expected probabilities that add up '
                     'to 1 (None: an equal share of what the others leave)')
  return max(p_write, 0.0), p['p_ignore'], max(p_read, 0.0)


def spec(p):
  return base.TaskSpec(
      name='flip_flop', kind='classification', output='step', input_kind='tokens',
      vocab_size=QUERY + 1, input_dim=None, num_outputs=2, seq_len=p['seq_len'],
      target_len=p['seq_len'], baseline=math.log(2),
      baseline_name='cross-entropy per read of a uniform guess (chance accuracy 0.5)',
      params=dict(p))


def example(index, seed, p):
  rng = base.example_rng(seed, index)
  pairs = p['seq_len'] // 2
  chances = np.array(probabilities(p))
  ops = rng.choice(np.array([WRITE, IGNORE, READ]), size=pairs, p=chances / chances.sum())
  ops[0], ops[-1] = WRITE, READ
  bits = rng.integers(0, 2, size=pairs)
  writes = np.flatnonzero(ops == WRITE)
  last_write = writes[np.searchsorted(writes, np.arange(pairs), side='right') - 1]
  reads = ops == READ
  inputs = np.empty(2 * pairs, np.int32)
  inputs[0::2] = ops
  inputs[1::2] = np.where(reads, QUERY, bits + FIRST_BIT)
  targets = np.zeros(2 * pairs, np.int32)
  targets[1::2] = np.where(reads, bits[last_write], 0)
  mask = np.zeros(2 * pairs, np.float32)
  mask[1::2] = reads
  return dict(inputs=inputs, targets=targets, mask=mask, lengths=np.int32(2 * pairs))


CRITERION = base.accuracy_criterion('the read bits (a single wrong read is an attention glitch)')
TASK = base.Task('flip_flop', DEFAULTS, resolve, spec, example, criterion=CRITERION)
