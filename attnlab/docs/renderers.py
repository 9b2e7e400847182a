"""The table renderers by name: each takes [(path, loaded source)], the marker's options and the
doc's path, and gives the table's lines."""
from attnlab.docs import learning_cost_tables, recording_tables, struggles_tables

RENDERERS = {
    "learning_cost_by_model": learning_cost_tables.by_model,
    "learning_cost_by_length": learning_cost_tables.by_length,
    "compare_small": recording_tables.compare_small,
    "transformer_schedule": recording_tables.transformer_schedule,
    "seeds_of_point": recording_tables.seeds_of_point,
    "growth_over": recording_tables.growth_over,
    "long_slice": recording_tables.long_slice,
    "lr_sweep": recording_tables.lr_sweep,
    "lru_copy": recording_tables.lru_copy,
    "selective_copy": recording_tables.selective_copy,
    "long_range": recording_tables.long_range,
    "hochreiter_protocol": recording_tables.hochreiter_protocol,
    "struggles_by_length": struggles_tables.by_length,
    "struggles_seeds": struggles_tables.seeds,
    "struggles_mqar": struggles_tables.mqar,
    "struggles_summary": struggles_tables.summary,
}


def render(name: str, sources: list, options: dict, doc: str, where: str) -> list:
  """The rendered lines of table `name`; ValueError naming the marker for an unknown name."""
  if name not in RENDERERS:
    raise ValueError(f"{where}: unknown table {name!r}; valid: {', '.join(sorted(RENDERERS))}")
  try:
    return RENDERERS[name](sources, options, doc)
  except (KeyError, IndexError, TypeError) as e:
    raise ValueError(f"{where}: table {name} cannot be rendered from "
                     f"{', '.join(p for p, _ in sources)}: {type(e).__name__} {e}") from e
