"""The gradient-flow section of the comparison report: per length, the curves at init and trained,
the decay rates over seeds with their R², the recurrent state's Jacobians, and the decay during
training (grad_norms.json, attnlab/comparison/gradient_flow.py)."""
import os

import numpy as np

from attnlab.analysis import gradients, plots


def _rate(fit: dict) -> str:
  """'0.107 ± 0.010 (R² 0.82)' for a seeds' aggregate, '0.107 (R² 0.82)' for one fit; inf as 'inf'."""
  rate = fit["decades_per_step"]
  if not np.isfinite(rate):
    return "inf" if np.isinf(rate) else "-"
  std = f" ± {fit['decades_per_step_std']:.4f}" if fit.get("decades_per_step_std") is not None else ""
  return f"{rate:.4f}{std} (R² {fit['r2']:.2f})"


def _per_seed_rates(fit: dict) -> str:
  """Each seed's decay rate with its R²: 's0 0.100/0.85, s1 0.114/0.80'."""
  return ", ".join(f"s{f.get('seed', i)} {f['decades_per_step']:.4f}/{f['r2']:.2f}"
                   if np.isfinite(f["decades_per_step"]) else f"s{f.get('seed', i)} inf"
                   for i, f in enumerate(fit.get("per_seed", [])))


def _span(fit: dict) -> str:
  span = fit["span_decades"]
  std = f" ± {fit['span_decades_std']:.2f}" if fit.get("span_decades_std") is not None else ""
  return "inf" if np.isinf(span) else f"{span:.2f}{std}"


def _flow_table(flows: dict) -> list:
  """Per model: the decay rate (mean over seeds) at the first and the last measured step, with R²."""
  lines = ["| model | seeds | first step: decades/step (R²) | last step | last: decades/step (R²) |",
           "|---|---|---|---|---|"]
  for model, seeds in flows.items():
    ends = []
    for i in (0, -1):
      fit = gradients.aggregate_fits([dict({k: s[k][i] for k in gradients.FIT_KEYS}, nonzero=2)
                                      for s in seeds])
      ends.append(_rate(fit))
    last = sorted({s["steps"][-1] for s in seeds})
    lines.append(f"| {model} | {len(seeds)} | {ends[0]} | {', '.join(map(str, last))} | {ends[1]} |")
  return lines


def figure(kind: str, length, grad_norms: dict) -> str:
  """The file name of a figure of the section: kind 'init', 'trained' or 'training' at `length`
  (the first length's without a suffix, as before lengths were several)."""
  suffix = "" if str(length) == str(grad_norms["T"]) else f"_T{length}"
  return f"grad_flow_training{suffix}.png" if kind == "training" else f"grad_norms_{kind}{suffix}.png"


def _length_section(grad_norms: dict, length: int, at: dict, out_dir: str) -> list:
  lines = [f"### T={length}", ""]
  for when in ("init", "trained"):
    curves = {m: gradients.geometric_mean_curve(n[when]) for m, n in at["norms"].items()}
    if curves:
      path = plots.gradient_norms(curves, os.path.join(out_dir, figure(when, length, grad_norms)),
                                  f"{grad_norms['task']}, T={length}: gradient norm vs distance "
                                  f"({when}; geometric mean over seeds)")
      lines.append(f"![gradient norms {when} T={length}]({os.path.basename(path)})")
  lines += ["", "Decades lost per step of distance, mean ± std (ddof=1) over seeds with the fit's R² "
            "(mean over seeds); span: log10(max/min) of the curve; each seed's rate/R² beside.", "",
            "| model | seeds | decades/step init (R²) | span init | decades/step trained (R²) | "
            "span trained | each seed init | each seed trained |", "|---|---|---|---|---|---|---|---|"]
  for model, fits in at["fits"].items():
    i, t = fits["init"], fits["trained"]
    lines.append(f"| {model} | {i['count']} | {_rate(i)} | {_span(i)} | {_rate(t)} | {_span(t)} | "
                 f"{_per_seed_rates(i)} | {_per_seed_rates(t)} |")
  cut_off = [m for m, f in at["fits"].items() if any(w["nonzero"] == 1 for w in f.values())]
  if cut_off:
    lines += ["", f"inf: {', '.join(cut_off)} passes no gradient to any step but the one it reads "
              "out (every earlier ||dL/dx_t|| is exactly 0)."]
  if at.get("missing"):
    lines += ["", f"Not trained at T={length} (nothing to measure): {', '.join(at['missing'])}."]
  if at.get("state_jacobian"):
    lines += ["", "Recurrent state: ||dh_T/dh_t|| decay (decades/step with R², span) and the mean top "
              "singular value of the step Jacobians dh_{t+1}/dh_t (Pascanu et al.: vanishing when it "
              "stays below 1), mean ± std over seeds.", "",
              "| model | decades/step init (R²) | span init | top σ init | decades/step trained (R²) | "
              "span trained | top σ trained |", "|---|---|---|---|---|---|---|"]
    for model, sj in at["state_jacobian"].items():
      cells = []
      for w in ("init", "trained"):
        top = sj[w]["top_singular_value_mean"]
        std = sj[w].get("top_singular_value_std")
        cells += [_rate(sj[w]["fit"]), _span(sj[w]["fit"]),
                  f"{top:.3f}" + (f" ± {std:.3f}" if std is not None else "")]
      lines.append(f"| {model} | " + " | ".join(cells) + " |")
  flows = at.get("through_training") or {}
  if flows:
    path = plots.flow_through_training(
        flows, os.path.join(out_dir, figure("training", length, grad_norms)),
        f"{grad_norms['task']}, T={length}: gradient decay during training (one line per seed)")
    lines += ["", "During training (config.log_grad_flow: the fit of ||dL/dx_t|| on 8 validation "
              "sequences at initialisation and every evaluation):", "",
              f"![gradient decay during training T={length}]({os.path.basename(path)})", ""]
    lines += _flow_table(flows)
  return lines + [""]


def section(grad_norms: dict, out_dir: str) -> list:
  lengths = grad_norms.get("lengths") or [grad_norms["T"]]
  seeds = grad_norms.get("seeds")
  lines = [f"Task `{grad_norms['task']}`, T={', '.join(map(str, lengths))}"
           + (f", seeds {seeds}" if seeds else "") + ": ||dL/dx_t|| of the loss at the last step, in "
           f"float64, for {grad_norms.get('num_examples', 16)} test sequences, against the distance "
           "T-1-t.", ""]
  measured = by_length(grad_norms)
  if not any(at["fits"] for at in measured.values()):
    return lines + [f"No model was trained on `{grad_norms['task']}` at T={', '.join(map(str, lengths))} "
                    "(comparison.gradient_task / gradient_length / gradient_flow.lengths name no "
                    "trained run), so there is nothing to measure."]
  for length, at in measured.items():
    if at["fits"]:
      lines += _length_section(grad_norms, int(length), at, out_dir)
  for model, fg in grad_norms.get("forget_gate", {}).items():
    path = plots.curves({"mean forget gate": (fg["steps"], fg["mean"]),
                         "gradient span (decades)": (fg["steps"], fg["span_decades"])},
                        os.path.join(out_dir, f"forget_gate_{model}.png"),
                        f"{model}: forget gate and gradient span during training", "value", log=False)
    lines += ["", f"![forget gate {model}]({os.path.basename(path)})",
              f"{model}: mean forget gate {fg['mean'][0]:.3f} at init -> {fg['mean'][-1]:.3f} after "
              f"training; gradient span {fg['span_decades'][0]:.2f} -> {fg['span_decades'][-1]:.2f} "
              "decades."]
  return lines


def by_length_of(grad_norms: dict) -> dict:
  """A grad_norms.json written before seeds were aggregated (one seed, one length) as by_length."""
  fits = {m: {w: gradients.aggregate_fits([f]) for w, f in fs.items()}
          for m, fs in grad_norms["fits"].items()}
  norms = {m: {w: [grad_norms[w][m]] for w in ("init", "trained")} for m in grad_norms["fits"]}
  jac = {m: {w: {"fit": gradients.aggregate_fits([s["fit"]]),
                 "top_singular_value_mean": s["top_singular_value_mean"]} for w, s in sj.items()}
         for m, sj in grad_norms.get("state_jacobian", {}).items()}
  return {"fits": fits, "norms": norms, "state_jacobian": jac}


def by_length(grad_norms: dict) -> dict:
  """{str(T): the measurements at T} of grad_norms.json, old single-seed files included."""
  return grad_norms.get("by_length") or {str(grad_norms["T"]): by_length_of(grad_norms)}
