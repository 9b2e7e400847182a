"""Figures of the report (matplotlib, Agg backend: no display needed). Each function saves a PNG.

Every model has one colour in every figure (`MODEL_COLOURS`, `colour`); titles wrap instead of
running off the figure; a quantity measured at one length only is drawn against the models on a
categorical axis, never on a log length axis with one point.
"""
import textwrap

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)
import matplotlib.ticker  # noqa: E402
import numpy as np  # noqa: E402

# One colour per model (registry names, configs/common.py's variants, seq2seq models), the same in
# every figure; a variant takes a lighter shade of its model's colour.
MODEL_COLOURS = {
    "rnn": "#1f77b4", "lstm": "#ff7f0e", "lstm_chrono": "#c49c00", "gru": "#2ca02c",
    "gru_carry": "#98df8a", "lru": "#9467bd", "transformer": "#d62728",
    "transformer_window0": "#ff9896", "mamba": "#8c564b", "mingru": "#e377c2", "minlstm": "#7f7f7f",
    "slstm": "#17becf", "seq2seq_rnn": "#1f77b4", "seq2seq_attention": "#d62728",
    "transformer_seq2seq": "#bcbd22"}
TITLE_WIDTH = 58  # characters per title line at the default figure width


def colour(label: str, index: int = 0) -> str:
  """The fixed colour of a model name; other labels (e.g. 'r=1.2 clip=off') take matplotlib's
  cycle by their position `index`."""
  return MODEL_COLOURS.get(label, f"C{index % 10}")


def _title(ax, title: str):
  ax.set_title("\n".join(textwrap.wrap(title, TITLE_WIDTH)), fontsize=10)


def _save(fig, path):
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)
  return path


def gradient_norms(curves: dict, path: str, title: str):
  """curves: {label: ||dL/dx_t|| (T,)}, plotted against distance from the end, log scale. A curve
  with one nonzero norm (a model whose gradient reaches only the step it reads out) is a marker,
  named so in the legend."""
  fig, ax = plt.subplots(figsize=(6.4, 4))
  for i, (label, norms) in enumerate(curves.items()):
    norms = np.asarray(norms, np.float64)
    distance = np.arange(len(norms))[::-1]
    shown = np.where(norms > 0, norms, np.nan)
    single = np.isfinite(shown).sum() == 1
    ax.semilogy(distance, shown, "o" if single else "-", markersize=7, color=colour(label, i),
                label=f"{label} (nonzero only at distance {int(distance[np.isfinite(shown)][0])})"
                if single else label)
  ax.set_xlabel("distance from the last step, T-1-t")
  ax.set_ylabel("||dL/dx_t||")
  _title(ax, title)
  ax.legend(fontsize=8)
  ax.grid(alpha=0.3)
  return _save(fig, path)


def _single_length(series_lengths) -> bool:
  return len({t for lengths in series_lengths for t in lengths}) <= 1


def metric_vs_length(series: dict, path: str, title: str, ylabel: str, baseline=None,
                     xlabel: str = "sequence length T", log_x: bool = True):
  """series: {label: (lengths, means, stds or None)}; an optional horizontal baseline. With one
  length in all, a point per model on a categorical axis (the length in the axis label)."""
  fig, ax = plt.subplots(figsize=(6.4, 4))
  single = _single_length(lengths for lengths, _, _ in series.values())
  for i, (label, (lengths, means, stds)) in enumerate(series.items()):
    x = [i] * len(lengths) if single else lengths
    ax.errorbar(x, means, yerr=stds, marker="o", capsize=3, label=label, color=colour(label, i))
  if baseline is not None:
    ax.axhline(baseline, color="gray", linestyle="--", label="baseline")
  if single:
    ax.set_xticks(range(len(series)), list(series), rotation=20)
    ax.set_xlim(-0.5, len(series) - 0.5)
    lengths = {t for s in series.values() for t in s[0]}
    xlabel = f"model ({xlabel} = {lengths.pop()})" if lengths else "model"
  elif log_x:
    ax.set_xscale("log")
    ax.set_xticks(sorted({t for s in series.values() for t in s[0]}))
    ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
  ax.set_xlabel(xlabel)
  ax.set_ylabel(ylabel)
  _title(ax, title)
  ax.legend(fontsize=8)
  ax.grid(alpha=0.3)
  return _save(fig, path)


def curves(series: dict, path: str, title: str, ylabel: str, log: bool = True):
  """series: {label: (steps, values)} as lines, optionally on a log y axis."""
  fig, ax = plt.subplots(figsize=(6.4, 4))
  for i, (label, (x, y)) in enumerate(series.items()):
    y = np.asarray(y, np.float64)
    ax.plot(x, np.where(np.isfinite(y), y, np.nan), label=label, color=colour(label, i),
            marker="o" if len(y) < 3 else None)
  if log:
    ax.set_yscale("log")
  ax.set_xlabel("step")
  ax.set_ylabel(ylabel)
  _title(ax, title)
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
  _title(ax, title)
  return _save(fig, path)


def _plain_ticks(ax, lengths=None):
  """Plain numbers on a log axis ('20', '40'; '12,000' on y) instead of 2x10^1: x ticks at the
  measured lengths, y ticks at 1, 2, 5 x 10^k."""
  plain = matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:,.0f}")
  if lengths:
    ax.set_xticks(sorted(lengths), [str(t) for t in sorted(lengths)])
    ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
  ax.yaxis.set_major_locator(matplotlib.ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
  ax.yaxis.set_major_formatter(plain)
  ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())


def _censored_arrow(ax, x, cap, col):
  """An upward arrow from the cap: the value is more than the cap."""
  ax.annotate("", xy=(x, cap * 1.3), xytext=(x, cap * 1.04),
              arrowprops=dict(arrowstyle="->", color=col, lw=1.5))


def learning_cost(series: dict, path: str, title: str):
  """Sequences to solve against T. series: {model: {"lengths", "seeds": per length a list of
  (sequences or None = censored), "medians": per length (None = censored), "caps": per length}}.
  Every seed a small dot; a censored seed an upward triangle at the cap; the median a line with
  filled markers, a censored median an open marker at the cap with an arrow up (more than the cap).
  Several lengths: log-log axes, models shifted by a few percent in T so that their markers do not
  hide each other; one length: the models side by side on a categorical axis."""
  fig, ax = plt.subplots(figsize=(6.4, 4.4))
  single = _single_length(s["lengths"] for s in series.values())
  for i, (model, s) in enumerate(series.items()):
    col, shift = colour(model, i), 1.0 + 0.03 * (i - (len(series) - 1) / 2)  # models side by side
    xs = [i] * len(s["lengths"]) if single else [t * shift for t in s["lengths"]]
    for x, seeds, cap in zip(xs, s["seeds"], s["caps"]):
      solved = [v for v in seeds if v is not None]
      censored = len(seeds) - len(solved)
      ax.plot([x] * len(solved), solved, ".", color=col, alpha=0.6, markersize=5)
      if censored:
        ax.plot([x] * censored, [cap] * censored, "^", color=col, alpha=0.6, markersize=5)
    solved = [(x, m) for x, m in zip(xs, s["medians"]) if m is not None]
    if solved:
      ax.plot(*zip(*solved), "o-", color=col, label=model)
    open_pts = [(x, cap) for x, m, cap in zip(xs, s["medians"], s["caps"]) if m is None]
    for x, cap in open_pts:
      _censored_arrow(ax, x, cap, col)
    if open_pts:
      ax.plot(*zip(*open_pts), "o", markerfacecolor="none", color=col, markersize=9,
              label=f"{model} (median censored: more than the cap)" if not solved else None)
  ax.plot([], [], "^", color="gray", label="a seed censored at the cap")
  censored_caps = [cap for s in series.values() for m, cap in zip(s["medians"], s["caps"]) if m is None]
  if censored_caps:  # room above the cap for the arrows
    ax.set_ylim(top=max(ax.get_ylim()[1], 1.45 * max(censored_caps)))
  if single:
    ax.set_xticks(range(len(series)), list(series), rotation=20)
    ax.set_xlim(-0.5, len(series) - 0.5)
    lengths = {t for s in series.values() for t in s["lengths"]}
    ax.set_xlabel(f"model (T = {lengths.pop()})" if lengths else "model")
  else:
    ax.set_xscale("log")
    ax.set_xlabel("sequence length T")
  ax.set_yscale("log")
  _plain_ticks(ax, None if single else {t for s in series.values() for t in s["lengths"]})
  ax.set_ylabel("training sequences to solve")
  _title(ax, title)
  ax.legend(fontsize=7)
  ax.grid(alpha=0.3, which="both")
  return _save(fig, path)


def flow_through_training(series: dict, path: str, title: str):
  """Gradient decay during training, per model. series: {model: [per seed {"steps", "decades_per_step",
  "r2"}]}: decades lost per step of distance (top) and the fit's R^2 (bottom) at each measured
  training step; one line per seed, in the model's colour."""
  fig, (top, bottom) = plt.subplots(2, 1, figsize=(6.4, 6), sharex=True)
  for i, (model, seeds) in enumerate(series.items()):
    col = colour(model, i)
    for k, s in enumerate(seeds):
      rate = np.asarray(s["decades_per_step"], np.float64)
      label = model if k == 0 else None
      marker = "o" if len(rate) < 3 else "."
      top.plot(s["steps"], np.where(np.isfinite(rate), rate, np.nan), marker=marker, color=col,
               alpha=0.8, label=label)
      bottom.plot(s["steps"], np.asarray(s["r2"], np.float64), marker=marker, color=col, alpha=0.8)
  top.axhline(0, color="gray", lw=0.8)
  top.set_ylabel("decades lost per step\nof distance")
  bottom.set_ylabel("fit R²")
  bottom.set_ylim(-0.05, 1.05)
  bottom.set_xlabel("training step")
  _title(top, title)
  top.legend(fontsize=7)
  for ax in (top, bottom):
    ax.grid(alpha=0.3)
  return _save(fig, path)
