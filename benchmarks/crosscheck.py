"""Agreement with an independent implementation (torchattacks 3.5.1) on the same trained model.

    python benchmarks/crosscheck.py [--n 500]

Model: the white-box chapter's quick-profile small CNN on MNIST (trained through the cache if
missing). Prints one Markdown table: per attack, robust accuracy or success rate and median
perturbation for advlab and torchattacks at the same parameters. Black-box attacks (Square,
one-pixel) see the model through advlab's query oracle; torchattacks queries it directly.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch
import torchattacks

from advlab import ThreatModel
from advlab.attacks import QueryOracle, apgd, carlini_wagner_l2, deepfool, fgsm, pgd, run_attack
from advlab.execution import configure_environment
from advlab.data import load_dataset
from advlab.training import TrainConfig, load_or_train


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--n-minimal", type=int, default=100)
    args = ap.parse_args()
    configure_environment(Path(__file__).resolve().parents[1])  # the repository's data and model cache
    model, info = load_or_train(TrainConfig(dataset="mnist", model="small_cnn", epochs=2, seed=0), progress=False)
    data = load_dataset("mnist", "test").subset(args.n, seed=0, stratified=True)
    x, y = data.images(), data.y
    acc = lambda z, yy=y: 100 * (model(z).argmax(1) == yy).float().mean().item()
    t = ThreatModel("linf", 0.1)
    rows = [f"model: small CNN, MNIST, clean accuracy {acc(x):.1f}% on {len(x)} test examples "
            f"(quick-profile checkpoint, test accuracy {100 * info['metrics']['test_accuracy']:.1f}% on 2,000)", "",
            "| attack, parameters | measure | advlab | torchattacks 3.5.1 |", "|---|---|---|---|"]
    ours, theirs = fgsm(model, x, y, threat=t).x_adv, torchattacks.FGSM(model, eps=0.1)(x, y)
    rows.append(f"| FGSM L∞ ε=0.1 | max abs difference of the images | {(ours - theirs).abs().max():.2e} | |")
    rows.append(f"| FGSM L∞ ε=0.1 | accuracy (%) | {acc(ours):.1f} | {acc(theirs):.1f} |")
    torch.manual_seed(0)
    theirs = torchattacks.PGD(model, eps=0.1, alpha=0.01, steps=10, random_start=True)(x, y)
    ours = pgd(model, x, y, threat=t, steps=10, step_size=0.01, generator=torch.Generator().manual_seed(0)).x_adv
    rows.append(f"| PGD L∞ ε=0.1, 10 × 0.01, random start | accuracy (%) | {acc(ours):.1f} | {acc(theirs):.1f} |")
    t2 = ThreatModel("l2", 1.5)
    torch.manual_seed(0)
    theirs = torchattacks.PGDL2(model, eps=1.5, alpha=0.15, steps=10, random_start=True)(x, y)
    ours = pgd(model, x, y, threat=t2, steps=10, step_size=0.15, generator=torch.Generator().manual_seed(0)).x_adv
    rows.append(f"| PGD L2 ε=1.5, 10 × 0.15, random start | accuracy (%) | {acc(ours):.1f} | {acc(theirs):.1f} |")
    for loss in ("ce", "dlr"):
        theirs = torchattacks.APGD(model, norm="Linf", eps=0.1, steps=100, loss=loss, seed=0)(x, y)
        ours = apgd(model, x, y, threat=t, loss=loss, generator=torch.Generator().manual_seed(0)).x_adv
        rows.append(f"| APGD-{loss.upper()} L∞ ε=0.1, 100 steps | accuracy (%) | {acc(ours):.1f} | {acc(theirs):.1f} |")

    xm, ym = x[: args.n_minimal], y[: args.n_minimal]

    def minimal(adv):
        fooled = model(adv).argmax(1) != ym
        d = (adv - xm).flatten(1).norm(dim=1)
        return f"{100 * fooled.float().mean():.0f}% / {d[fooled].median():.3f}"

    rows.append(f"| DeepFool L2, 50 steps, overshoot 0.02 | success / median L2 ({len(xm)} ex.) | "
                f"{minimal(deepfool(model, xm, ym).x_adv)} | "
                f"{minimal(torchattacks.DeepFool(model, steps=50, overshoot=0.02)(xm, ym))} |")
    cw_one = carlini_wagner_l2(model, xm, ym, steps=100, initial_const=1.0, binary_search_steps=1,
                               abort_early=False).x_adv
    cw_search = carlini_wagner_l2(model, xm, ym, steps=100, initial_const=0.1, binary_search_steps=5).x_adv
    rows.append(f"| CW L2, c=1, κ=0, 100 steps, lr 0.01 | success / median L2 | {minimal(cw_one)} | "
                f"{minimal(torchattacks.CW(model, c=1.0, kappa=0, steps=100, lr=0.01)(xm, ym))} |")
    rows.append(f"| CW L2, c₀=0.1, 5 search steps × 100 (advlab only) | success / median L2 | {minimal(cw_search)} | |")
    # black-box attacks: the same model behind a query oracle, torchattacks querying it directly
    for norm, eps, p_init in (("linf", 0.2, 0.3), ("l2", 2.0, 0.3)):
        ours = run_attack("square", QueryOracle(model, output="logits", budget=500), x, y,
                          threat=ThreatModel(norm, eps), p_init=p_init, generator=torch.Generator().manual_seed(0))
        theirs = torchattacks.Square(model, norm={"linf": "Linf", "l2": "L2"}[norm], eps=eps, n_queries=500,
                                     p_init=p_init, seed=0)(x, y)
        rows.append(f"| Square {norm} ε={eps}, 500 queries, p_init {p_init} | accuracy (%) | {acc(ours.x_adv):.1f} | "
                    f"{acc(theirs):.1f} |")
    keep = model(xm).argmax(1) == ym
    xc, yc = xm[keep], ym[keep]
    for k in (1, 3):
        ours = run_attack("onepixel", QueryOracle(model, output="probs"), xc, yc, pixels=k, population=30,
                          generations=10, generator=torch.Generator().manual_seed(0))
        torch.manual_seed(0)
        theirs = torchattacks.OnePixel(model, pixels=k, steps=10, popsize=10, inf_batch=128)(xc, yc)
        rows.append(f"| one-pixel, {k} pixel(s), population 30 × 10 generations | success (%) on {len(xc)} correct | "
                    f"{100 * ours.success.float().mean():.1f} | {100 - acc(theirs, yc):.1f} |")
    theirs = torchattacks.MIFGSM(model, eps=0.1, alpha=0.01, steps=10, decay=1.0)(x, y)
    ours = run_attack("mifgsm", model, x, y, threat=t, steps=10, step_size=0.01).x_adv
    rows.append(f"| MI-FGSM L∞ ε=0.1, 10 × 0.01, decay 1 | accuracy (%) | {acc(ours):.1f} | {acc(theirs):.1f} |")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
