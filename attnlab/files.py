"""Paths that may be local or on a cloud bucket (gs://...), through etils.epath.

A run's workdir can be `gs://bucket/runs/x` on Cloud TPU: orbax writes checkpoints there itself,
and these helpers read and write the small files beside them (config, metrics, summaries).
Buckets need the `[tpu]` extra (gcsfs).
"""
import os

from etils import epath


def is_remote(path) -> bool:
  return "://" in str(path)


def absolute(path) -> str:
  """An absolute local path, or a bucket URL unchanged."""
  return str(path) if is_remote(path) else os.path.abspath(path)


def join(*parts) -> str:
  return str(epath.Path(parts[0]).joinpath(*parts[1:]))


def exists(path) -> bool:
  return epath.Path(path).exists()


def is_dir(path) -> bool:
  return epath.Path(path).is_dir()


def listdir(path) -> list:
  p = epath.Path(path)
  return sorted(c.name for c in p.iterdir()) if p.is_dir() else []


def makedirs(path):
  epath.Path(path).mkdir(parents=True, exist_ok=True)


def read_text(path) -> str:
  return epath.Path(path).read_text()


def write_text(path, text: str):
  epath.Path(path).write_text(text)


def append_text(path, text: str):
  """Appends locally; a bucket object cannot be appended to, so it is rewritten whole."""
  if is_remote(path):
    old = read_text(path) if exists(path) else ""
    write_text(path, old + text)
  else:
    with open(path, "a") as f:
      f.write(text)
