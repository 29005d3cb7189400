"""Picture of the general-model corpus: one example object per texture (amplitude and phase) and
every probe kind (amplitude, with the measured probe at its native zoom).

  python benchmarks/plot_corpus.py --probe-file ../shared/data/Run1084_recon3_postPC.npz -o docs/images/corpus.png
"""

from __future__ import annotations

import argparse

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from ptychopinn.data.contract import load_probe
from ptychopinn.physics import families


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--probe-file", help="measured probe NPZ (probeGuess)")
    ap.add_argument("-o", "--output", default="corpus.png")
    ap.add_argument("--seed", type=int, default=4)
    a = ap.parse_args(argv)
    rng = np.random.default_rng(a.seed)
    tex = families.TEXTURES
    fig, axes = plt.subplots(3, len(tex), figsize=(1.9 * len(tex), 6.0), constrained_layout=True)
    for j, t in enumerate(tex):
        rel = families.RELATIONS[j % len(families.RELATIONS)] if t != "lines" else "independent"
        ta = families.texture(t, 128, rng)
        tp = ta if rel == "thickness" else families.texture(str(rng.choice(tex)), 128, rng)
        o = families.complex_object(rel, ta, tp, rng)
        for i, (img, lab, cmap) in enumerate(((np.abs(o), "amplitude", "gray"), (np.angle(o), "phase (rad)", "twilight"))):
            im = axes[i, j].imshow(img, cmap=cmap)
            axes[i, j].set_title(f"{t}\n{rel}" if i == 0 else lab, fontsize=8)
            fig.colorbar(im, ax=axes[i, j], fraction=0.046, pad=0.02).ax.tick_params(labelsize=6)
    probes = [(k, families.random_probe(64, k, rng)) for k in families.PROBE_KINDS]
    if a.probe_file:
        p = load_probe(a.probe_file, 64)
        probes.append(("measured", p / np.abs(p).max()))
    for j in range(len(tex)):
        ax = axes[2, j]
        if j < len(probes):
            im = ax.imshow(np.abs(probes[j][1]), cmap="magma")
            ax.set_title(f"probe: {probes[j][0]}\n|P| (peak 1)", fontsize=8)
            fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02).ax.tick_params(labelsize=6)
        else:
            ax.axis("off")
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle("general-model corpus: textures x contrast relations (rows 1-2, 128 px), probes (row 3, N=64)",
                 fontsize=10)
    fig.savefig(a.output, dpi=90)
    print(f"wrote {a.output}")


if __name__ == "__main__":
    main()
