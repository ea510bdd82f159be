"""Scaling figure: flagship `build_cube` CPU time vs padded field volume and vs number of lines.

Left panel: the PSF FWHM is stepped (0.1" ... 1.2"), which grows the field of
view and the padding, so the padded volume ``n_chan x n_ext^2`` (the pre-PSF
scene; the FFT volume when the PSF stage uses an FFT) grows; the time is
plotted against it with the stage each point used (separable blur or FFT).
Right panel: the flagship's six lines are cut to the last 1 ... 6 (OIII
5008, the S/N line, always kept; PSF 0.2547"), so the number of channels grows with the lines. One thread; each
point is the median CPU time (``time.process_time``, which is less sensitive
to a loaded machine than wall time) of ``--repeats`` calls after a warm-up.

Run: ``python benchmarks/plot_scaling.py [--repeats 7] [--out scaling.png] [--json scaling.json]``
(figures and numbers are written where you say; do not commit them).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from _timing import median_cpu  # benchmarks/ is on sys.path when run as a script

for _var in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

ROOT = Path(__file__).resolve().parents[1]
FWHMS = (0.1, 0.15, 0.2547, 0.35, 0.5, 0.7, 0.9, 1.2)


def measure(repeats: int) -> dict:
    """CPU seconds per cube against the padded volume and against the number of lines."""
    from mockzgrad.config import load_config
    from mockzgrad.observation import ifu

    base = load_config(ROOT / "examples" / "flagship_z5.toml")
    volume = []
    for fwhm in FWHMS:
        cfg = base.replace(**{"instrument.psf.fwhm": fwhm})
        plan = ifu.plan_ifu(cfg)
        s = plan.sampling
        h = max(k.shape[0] for k in plan.kernels.values()) // 2
        separable = plan.taps is not None and ifu._separable_is_cheaper(h, s)
        volume.append({"psf_fwhm": fwhm, "n_chan": int(s.edges_lo.size), "n_ext": int(s.n_ext), "n": int(s.n),
                       "volume": int(s.edges_lo.size * s.n_ext**2), "stage": "separable" if separable else "fft",
                       "cpu_s": median_cpu(lambda: ifu.build_cube(cfg), repeats)})
        print(f"PSF {fwhm:5.3f}\": {volume[-1]['n_chan']} x {s.n_ext}^2 -> {volume[-1]['cpu_s'] * 1e3:7.1f} ms "
              f"({volume[-1]['stage']})", flush=True)
    lines = []
    names = list(base.lines.lines)[::-1]  # from OIII 5008, the S/N line, which must stay
    for k in range(1, len(names) + 1):
        cfg = base.replace(**{"lines.lines": names[:k]})
        n_chan = int(ifu.plan_ifu(cfg).sampling.edges_lo.size)
        lines.append({"n_lines": k, "n_chan": n_chan, "cpu_s": median_cpu(lambda: ifu.build_cube(cfg), repeats)})
        print(f"{k} line(s), {n_chan} channels -> {lines[-1]['cpu_s'] * 1e3:7.1f} ms", flush=True)
    return {"volume": volume, "lines": lines}


def plot(data: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    for stage, marker in (("separable", "o"), ("fft", "s")):
        pts = [p for p in data["volume"] if p["stage"] == stage]
        if pts:
            ax1.plot([p["volume"] / 1e6 for p in pts], [p["cpu_s"] * 1e3 for p in pts], marker, label=stage)
    for p in data["volume"]:
        ax1.annotate(f'{p["psf_fwhm"]:g}"', (p["volume"] / 1e6, p["cpu_s"] * 1e3), fontsize=7)
    ax1.set(xlabel=r"padded volume $n_{chan} n_{ext}^2$ (millions)", ylabel="build_cube CPU (ms)",
            title="vs PSF FWHM (field grows)")
    ax1.legend()
    ax2.plot([p["n_lines"] for p in data["lines"]], [p["cpu_s"] * 1e3 for p in data["lines"]], "o-")
    ax2.set(xlabel="lines rendered (from [OIII] 5008 back)", ylabel="build_cube CPU (ms)", title="vs number of lines")
    fig.tight_layout()
    fig.savefig(out, dpi=120)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--out", type=Path, default=None, help="figure file (PNG, PDF, ...)")
    parser.add_argument("--json", type=Path, default=None, help="write the numbers here")
    args = parser.parse_args(argv)
    data = measure(args.repeats)
    if args.json:
        args.json.write_text(json.dumps(data, indent=1))
    if args.out:
        plot(data, args.out)
        print(f"figure written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
