"""What `mockzgrad curves` says about a suite: checks, per-sign curves, curve shapes and which model fits.

:func:`summary_lines` turns the checks of
:class:`~mockzgrad.corrections.curveset.CorrectionCurves` and the assessment
of a :class:`~mockzgrad.corrections.transfer.TransferFunction` into lines of
text; :func:`refusal` says why no correction should be written (neither
model describes the suite), or None.
"""

from __future__ import annotations

from .curveset import CorrectionCurves
from .transfer import TransferFunction

__all__ = ["summary_lines", "refusal"]


def _check_line(kind: str, entry: dict) -> str:
    where = f"  check {kind:<4} |grad_z| = {entry.get('abs_grad', float('nan')):g}"
    if not entry.get("applicable", False):
        return f"{where}: not applicable ({entry.get('reason', '')})"
    state = "FLAGGED" if entry.get("flag") else "ok"
    return (f"{where}: {state} (max difference {entry['max_diff']:.3g} near x = {entry['x_at_max']:.2f}, "
            f"{entry['global_sigma']:.1f} sigma over {entry['n_bins']} bins)")


def _slope_text(tf: TransferFunction) -> str:
    """a(x) at both ends of the x range, at the suite's median |grad_z|: per sign when the slope has sign terms."""
    x0, x1 = tf.x_range
    g = tf.references.get("abs_grad") or 1.0
    signs = [("", 1.0)]
    if any(e.startswith("sign") for e in tf.structure.extras):
        signs = [("positive ", 1.0), ("negative ", -1.0)]
    parts = [f"slope a(x) {name}= {float(tf.slope(x0, s * g)):.2f} at x = {x0:.2f} to "
             f"{float(tf.slope(x1, s * g)):.2f} at x = {x1:.2f}" for name, s in signs]
    where = f" (|grad_z| = {g:g} dex/kpc)" if len(signs) > 1 else ""
    return ", ".join(parts) + where


def summary_lines(curves: CorrectionCurves, tf: TransferFunction | None = None) -> list:
    """Lines describing the curves' checks, per-sign coverage, shapes and the transfer function."""
    checks = curves.checks or {}
    lines = [_check_line(kind, e) for kind in ("snr", "sign") for e in checks.get(kind, [])]
    per_sign = (curves.settings or {}).get("per_sign", {})
    for g in per_sign.get("groups", []):
        if not g["per_sign_curves"] and min(g["n_pos"], g["n_neg"]) > 0:
            lines.append(f"  per-sign curves |grad_z| = {g['abs_grad']:g}: none ({g['n_pos']} positive, "
                         f"{g['n_neg']} negative mocks; need >= {per_sign['min_per_sign']} of each)")
    for p in checks.get("shape", []):
        lines.append(f"  curve |grad_z| = {p['abs_grad']:g} ({p['sign']}): {p['problem']}")
    if tf is not None:
        a = tf.assessment
        lines.append(f"  transfer function: {tf.structure.label()} from {tf.n_mocks} mocks (chosen by "
                     f"cross-validation); {_slope_text(tf)}; "
                     f"offset b = {float(tf.offset(tf.x_range[1])):+.4f} dex/kpc at large x")
        pos, neg = tf.sign_grad_range(1.0), tf.sign_grad_range(-1.0)
        if pos != neg:  # e.g. strong gradients of one sign left out for the calibrations' range
            lines.append(f"  transfer function measured for intrinsic grad_z from {-neg[1]:+g} to {-neg[0]:+g} and "
                         f"{pos[0]:+g} to {pos[1]:+g} dex/kpc (correct flags gradients beyond: above_suite_grad)")
        lines.append(f"  models: ratio {'describes' if a.get('ratio_ok') else 'does NOT describe'} the suite; "
                     f"transfer {'describes' if a.get('transfer_ok') else 'does NOT describe'} it")
        lines += [f"    - {r}" for r in a.get("reasons", [])]
    return lines


def refusal(curves: CorrectionCurves, tf: TransferFunction | None) -> str | None:
    """Why neither model describes the suite (no correction should be written without forcing), or None."""
    ratio_ok = not (curves.checks or {}).get("shape")
    transfer_ok = False
    reasons = []
    if tf is not None:
        ratio_ok = ratio_ok and bool(tf.assessment.get("ratio_ok"))
        transfer_ok = bool(tf.assessment.get("transfer_ok"))
        reasons += list(tf.assessment.get("reasons", []))
    if (curves.checks or {}).get("shape"):
        reasons.append("ratio: some fitted curves leave [0, 1.2] or turn over (see above)")
    if ratio_ok or transfer_ok:
        return None
    return "neither the ratio curves nor the transfer function describe the suite: " + "; ".join(reasons)
