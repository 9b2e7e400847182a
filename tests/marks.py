"""Parametrisations whose default-suite cases are a few representatives, the rest marked `slow`.

  @pytest.mark.parametrize("name", fast_only(models.MODELS, keep=("rnn", "transformer")))

The default suite (README: under 5 minutes on 2 cores) runs the `keep` cases; `pytest -m slow` runs
the others.
"""
import pytest


def fast_only(values, keep) -> list:
  """`values` with every one not in `keep` wrapped as a `slow` pytest.param."""
  missing = set(keep) - set(values)
  assert not missing, f"keep names {sorted(missing)}, not among {list(values)}"
  return [v if v in keep else pytest.param(v, marks=pytest.mark.slow) for v in values]
