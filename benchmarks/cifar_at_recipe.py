"""Which adversarial-training recipe gives the defenses chapter's quick CIFAR-10 VGG the most robustness
for its time: candidates trained on this machine, judged by the report's attack and by APGD at both
readings of the report's ε (pixels, and × the per-channel std).

Each recipe is a TrainConfig of the chapter's quick VGG (the architecture, width, augmentation and
seed of Table 1's models), trained once into the cache; the table gives its training seconds and
passes, clean accuracy and robust accuracy with 95% intervals on ``--n`` test images.

    python benchmarks/cifar_at_recipe.py [--n 500] [--recipes current fgsm_rs_all ...]
"""
from __future__ import annotations

import argparse

import pandas as pd

from advlab.chapters import defenses
from advlab.data import dataset_spec, load_dataset
from advlab.evaluate import accuracy, evaluate_attack
from advlab.execution import configure_environment, find_root
from advlab.threat import ThreatModel
from advlab.training import TrainConfig, load_or_train


def recipes(cfg) -> dict[str, TrainConfig]:
    current = defenses.cifar_configs(defenses.CHAPTER.resolve("quick", {"cifar_adv_subset": 8000,
                                                                        "cifar_train_steps": 4}))["PGD-L∞ trained"]
    e = cfg.cifar_eps
    e_std = e * sum(dataset_spec("cifar10").std) / 3  # the normalised reading's ε, in pixels (channel mean)

    def vgg(method, params, subset, epochs=cfg.cifar_adv_epochs, schedule="onecycle"):
        return TrainConfig(dataset="cifar10", model=cfg.cifar_model, model_options={"width": cfg.cifar_width},
                           epochs=epochs, train_subset=subset, augment=True, seed=cfg.seed, method=method,
                           method_params=params, schedule=schedule)

    return {"current": current,
            "fgsm_rs_half_all": vgg("fgsm_rs", {"eps": e, "fraction": 0.5}, None, schedule="cyclic"),
            "fgsm_rs_all": vgg("fgsm_rs", {"eps": e}, None, schedule="cyclic"),
            "pgd2_half_all": vgg("pgd", {"norm": "linf", "eps": e, "steps": 2, "step_size": e / 2, "fraction": 0.5},
                                 None),
            "pgd2_half_25k": vgg("pgd", {"norm": "linf", "eps": e, "steps": 2, "step_size": e / 2, "fraction": 0.5},
                                 25000),
            "fgsm_rs_half_all_std": vgg("fgsm_rs", {"eps": e_std, "fraction": 0.5}, None, schedule="cyclic")}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--recipes", nargs="+")
    args = ap.parse_args()
    configure_environment(find_root())
    cfg = defenses.CHAPTER.resolve("quick")
    data = load_dataset("cifar10", "test").subset(args.n, seed=cfg.seed)
    std = dataset_spec("cifar10").std
    e = cfg.cifar_eps
    attacks = {"PGD-10 step ε/10, ε pixels": ("pgd", ThreatModel("linf", e), {"steps": 10, "step_size": e / 10}),
               "PGD-10 step ε/10, ε × std": ("pgd", ThreatModel("linf", e, scale=std), {"steps": 10,
                                                                                        "step_size": e / 10}),
               "APGD-CE 20, ε pixels": ("apgd", ThreatModel("linf", e), {"steps": 20}),
               "APGD-CE 20, ε × std": ("apgd", ThreatModel("linf", e, scale=std), {"steps": 20})}
    rows = []
    for name, conf in recipes(cfg).items():
        if args.recipes and name not in args.recipes:
            continue
        model, info = load_or_train(conf, progress=False)
        m = info["metrics"]
        row = {"recipe": name, "method": conf.method, "examples": m["train_examples"], "epochs": conf.epochs,
               "train s": m["train_seconds"], "forwards": m["forwards"]}
        for label, (attack, threat, params) in attacks.items():
            r = evaluate_attack(model, data, attack=attack, threat=threat, seed=cfg.seed, progress=False, **params)
            a, c = accuracy(r).iloc[0], accuracy(r, "clean_correct").iloc[0]
            row["clean"] = f"{100 * c.accuracy:.1f} [{100 * c.ci_low:.1f}, {100 * c.ci_high:.1f}]"
            row[label] = f"{100 * a.accuracy:.1f} [{100 * a.ci_low:.1f}, {100 * a.ci_high:.1f}]"
        rows.append(row)
        print(row, flush=True)
    print(pd.DataFrame(rows).set_index("recipe").T.to_string())


if __name__ == "__main__":
    main()
