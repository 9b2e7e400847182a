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


def learning_cost(series: dict, path: str, title: str):
  """Sequences to solve against T on log-log axes. series: {model: {"lengths", "seeds": per length a
  list of (sequences or None = censored), "medians": per length (None = censored), "caps": per length}}.
  Every seed a small dot; a censored seed an upward triangle at the cap; the median a line with
  filled markers, a censored median an open marker at the cap. Models are shifted by a few percent
  in T so that their markers do not hide each other."""
  fig, ax = plt.subplots(figsize=(6.4, 4.4))
  for i, (model, s) in enumerate(series.items()):
    color, shift = f"C{i % 10}", 1.0 + 0.03 * (i - (len(series) - 1) / 2)  # models side by side
    s = dict(s, lengths=[t * shift for t in s["lengths"]])
    for t, seeds, cap in zip(s["lengths"], s["seeds"], s["caps"]):
      solved = [v for v in seeds if v is not None]
      censored = len(seeds) - len(solved)
      ax.plot([t] * len(solved), solved, ".", color=color, alpha=0.6, markersize=5)
      if censored:
        ax.plot([t] * censored, [cap] * censored, "^", color=color, alpha=0.6, markersize=5)
    solved = [(t, m) for t, m in zip(s["lengths"], s["medians"]) if m is not None]
    if solved:
      ax.plot(*zip(*solved), "o-", color=color, label=model)
    open_pts = [(t, cap) for t, m, cap in zip(s["lengths"], s["medians"], s["caps"]) if m is None]
    if open_pts:
      ax.plot(*zip(*open_pts), "o", markerfacecolor="none", color=color, markersize=9,
              label=None if solved else f"{model} (censored)")
  ax.plot([], [], "^", color="gray", label="censored at the cap")
  ax.set_xscale("log")
  ax.set_yscale("log")
  ax.set_xlabel("sequence length T")
  ax.set_ylabel("training sequences to solve")
  ax.set_title(title)
  ax.legend(fontsize=7)
  ax.grid(alpha=0.3, which="both")
  return _save(fig, path)
