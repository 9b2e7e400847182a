"""Test-session settings, made for a suite where JAX compile time dominates.

- XLA compiles with most optimisations off (`jax_disable_most_optimizations`): the programs compute
  the same values (tolerances cover reassociation) and compile ~25% faster.
  ATTNLAB_TEST_OPTIMIZE=1 compiles as users' runs do.
- One persistent compilation cache for the session, shared by the xdist workers and by the command
  lines the tests start (through $ATTNLAB_COMPILATION_CACHE, unless a test turns it off): tests that
  build the same program load it instead of compiling it again. ATTNLAB_TEST_CACHE=0 turns it off.
The environment variables are set here, in the controller, before xdist starts its workers, so the
workers and every subprocess inherit them.
"""
import os
import shutil
import tempfile

import jax

from attnlab import compile_cache

_OWNED = "ATTNLAB_TEST_CACHE_OWNER"


def pytest_configure(config):
  if os.environ.get("ATTNLAB_TEST_OPTIMIZE", "0") != "1":
    os.environ["JAX_DISABLE_MOST_OPTIMIZATIONS"] = "1"
    jax.config.update("jax_disable_most_optimizations", True)
  if os.environ.get("ATTNLAB_TEST_CACHE", "1") != "1":
    return
  if not hasattr(config, "workerinput") and _OWNED not in os.environ:  # the controller, or no xdist
    os.environ[compile_cache.ENV] = tempfile.mkdtemp(prefix="attnlab-test-cache-")
    os.environ[_OWNED] = str(os.getpid())
  if compile_cache.cache_dir():
    compile_cache.enable(min_compile_s=0.0)


def pytest_unconfigure(config):
  if os.environ.get(_OWNED) == str(os.getpid()):
    shutil.rmtree(os.environ.pop(compile_cache.ENV), ignore_errors=True)
    del os.environ[_OWNED]
