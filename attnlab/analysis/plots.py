"""Figures of the report (matplotlib, Agg backend: no display needed). Each function saves a PNG."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)
import numpy as np  # noqa: E402


def _save(fig, path):
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)
  return path


def gradient_norms(curves: dict, path: str, title: str):
  """curves: {label: ||dL/dx_t|| (T,)}, plotted against distance from the end, log scale."""
  fig, ax = plt.subplots(figsize=(6.4, 4))
  for label, norms in curves.items():
    norms = np.asarray(norms, np.float64)
    distance = np.arange(len(norms))[::-1]
    ax.semilogy(distance, np.where(norms > 0, norms, np.nan), label=label)
  ax.set_xlabel("distance from the last step, T-1-t")
  ax.set_ylabel("||dL/dx_t||")
  ax.set_title(title)
  ax.legend(fontsize=8)
  ax.grid(alpha=0.3)
  return _save(fig, path)


def metric_vs_length(series: dict, path: str, title: str, ylabel: str, baseline=None,
                     xlabel: str = "sequence length T", log_x: bool = True):
  """series: {label: (lengths, means, stds or None)}; an optional horizontal baseline."""
  fig, ax = plt.subplots(figsize=(6.4, 4))
  for label, (lengths, means, stds) in series.items():
    ax.errorbar(lengths, means, yerr=stds, marker="o", capsize=3, label=label)
  if baseline is not None:
    ax.axhline(baseline, color="gray", linestyle="--", label="baseline")
  if log_x:
    ax.set_xscale("log")
  ax.set_xlabel(xlabel)
  ax.set_ylabel(ylabel)
  ax.set_title(title)
  ax.legend(fontsize=8)
  ax.grid(alpha=0.3)
  return _save(fig, path)


def curves(series: dict, path: str, title: str, ylabel: str, log: bool = True):
  """series: {label: (steps, values)} as lines, optionally on a log y axis."""
  fig, ax = plt.subplots(figsize=(6.4, 4))
  for label, (x, y) in series.items():
    y = np.asarray(y, np.float64)
    ax.plot(x, np.where(np.isfinite(y), y, np.nan), label=label)
  if log:
    ax.set_yscale("log")
  ax.set_xlabel("step")
  ax.set_ylabel(ylabel)
  ax.set_title(title)
  ax.legend(fontsize=7)
  ax.grid(alpha=0.3)
  return _save(fig, path)


def attention_map(weights, path: str, title: str, xlabel="key position", ylabel="query position"):
  """weights (Tq,Tk) as an image."""
  fig, ax = plt.subplots(figsize=(5, 4.4))
  im = ax.imshow(np.asarray(weights), aspect="auto", cmap="viridis", interpolation="nearest")
  fig.colorbar(im, ax=ax)
  ax.set_xlabel(xlabel)
  ax.set_ylabel(ylabel)
  ax.set_title(title)
  return _save(fig, path)
