"""Sequential digits `digits`: sklearn's 8x8 digit images as pixel sequences.

The 1797 images of sklearn.datasets.load_digits (bundled with sklearn, no
download) are read row by row as 64 steps of one pixel, scaled from 0..16
to [0, 1]. With permute=True one fixed pixel permutation, drawn from
permutation_seed, is applied to every image (as in permuted sequential
MNIST), which spreads neighbouring pixels far apart in time.

Split: the images are shuffled once with np.random.default_rng(0); the first
1437 (80%) are `train`, the remaining 360 `test`. Example i of a split is
its i-th image: `seed` is ignored (shuffle in the data loader instead), and
indices past the split size raise ValueError.

Batch keys (n examples):
  inputs   float32 (n, 64, 1)
  targets  int32   (n,)  digit 0..9
  mask     float32 (n,)  all ones
  lengths  int32   (n,)  all 64

Baseline: ln 10, the cross-entropy of a uniform guess (classes are nearly
balanced).
"""

import functools
import math

import numpy as np

from attnlab.tasks import base

DEFAULTS = dict(permute=False, split='train', permutation_seed=0)
SPLIT_SIZES = {'train': 1437, 'test': 360}
SPLIT_SEED = 0
NUM_PIXELS = 64


def resolve(p):
  return dict(
      permute=base.check_choice('permute', p['permute'], (False, True)),
      split=base.check_choice('split', p['split'], tuple(SPLIT_SIZES)),
      permutation_seed=base.check_int('permutation_seed',
                                      p['permutation_seed'], 0),
  )


def spec(p):
  return base.TaskSpec(
      name='digits', kind='classification', output='sequence',
      input_kind='real', vocab_size=None, input_dim=1, num_outputs=10,
      seq_len=NUM_PIXELS, target_len=None, baseline=math.log(10),
      baseline_name='cross-entropy of a uniform guess over 10 classes',
      params=dict(p))


def size(p):
  return SPLIT_SIZES[p['split']]


@functools.lru_cache(maxsize=None)
def load_split(split, permute, permutation_seed):
  """Pixels float32 (N, 64, 1) and labels int32 (N,) of a split (read-only)."""
  from sklearn.datasets import load_digits
  data = load_digits()
  order = np.random.default_rng(SPLIT_SEED).permutation(len(data.target))
  num_train = SPLIT_SIZES['train']
  chosen = order[:num_train] if split == 'train' else order[num_train:]
  pixels = (data.data[chosen] / 16.0).astype(np.float32)
  if permute:
    pixels = pixels[:, np.random.default_rng(permutation_seed).permutation(NUM_PIXELS)]
  pixels = pixels[..., None]
  labels = data.target[chosen].astype(np.int32)
  pixels.setflags(write=False)
  labels.setflags(write=False)
  return pixels, labels


def example(index, seed, p):
  del seed  # the split fixes the order
  pixels, labels = load_split(p['split'], p['permute'], p['permutation_seed'])
  return dict(inputs=pixels[index].copy(), targets=labels[index],
              mask=np.float32(1.0), lengths=np.int32(NUM_PIXELS))


CRITERION = base.accuracy_criterion('held-out images classified')
TASK = base.Task('digits', DEFAULTS, resolve, spec, example, size,
                 criterion=CRITERION)
