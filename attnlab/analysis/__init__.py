"""attnlab.analysis: loading finished runs for notebooks (and, later, gradient flow and plots)."""
from attnlab.analysis.runs import Comparison, Run, load_comparison, load_run, with_plain_attention
