"""attnlab.analysis: loading finished runs for notebooks (and, later, gradient flow and plots)."""
from attnlab.analysis.runs import Run, load_run
