"""Where the persistent compilation cache lives, and how the environment turns it off."""
import os

from attnlab import compile_cache


def test_cache_dir_default_override_and_off(monkeypatch, tmp_path):
  monkeypatch.delenv(compile_cache.ENV, raising=False)
  assert compile_cache.cache_dir() == os.path.expanduser("~/.cache/attnlab/jax")
  monkeypatch.setenv(compile_cache.ENV, str(tmp_path / "cc"))
  assert compile_cache.cache_dir() == str(tmp_path / "cc")
  for off in ("off", "0", "OFF"):
    monkeypatch.setenv(compile_cache.ENV, off)
    assert compile_cache.cache_dir() is None
    assert compile_cache.enable() is None
