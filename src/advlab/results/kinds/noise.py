"""Kinds about random noise: Gaussian noise as an attack, PGD at the noise's own size, and randomized
networks' clean, one-draw and majority-vote predictions."""
from __future__ import annotations

import pandas as pd

from ...errors import InputError
from ...defenses import GaussianNoise, majority_vote
from ...evaluate import noise_injection, noise_summary, sweep
from ...models import predict
from ..spec import per_model, register_kind


@register_kind("noise", "Gaussian noise as an attack, mean over draws and worst of K (evaluate.noise_injection); "
                   "params: sigmas, draws")
def _noise(models, data, *, seed, batch_size, sigmas, draws):
    return per_model(models, lambda m: noise_injection(m, data, sigmas=sigmas, draws=draws, batch_size=batch_size,
                                                        seed=seed, progress=False))


@register_kind("matched_sweep", "a sweep (evaluate.sweep) whose ε grid adds, per noise level of the input `noise` "
                           "(kind noise, same examples), the noise's median norm over the whole subset: the "
                           "adversarial perturbation of the size of the random one; params: attacks, norm, eps_grid",
          whole_inputs=True)
def _matched_sweep(models, data, *, seed, batch_size, inputs, attacks, norm, eps_grid):
    medians = noise_summary(inputs["noise"])[f"median_{norm}"]
    grid = sorted(set(eps_grid) | {float(v) for v in medians})
    return sweep(models, data, attacks=attacks, norm=norm, eps_grid=grid, batch_size=batch_size, seed=seed,
                 progress=False)


@register_kind("noise_vote", "a model behind Gaussian noise of std sigmas[model]: clean, one noisy draw and "
                             "the majority vote over `draws` draws, per example (defenses.majority_vote); "
                             "params: sigmas, draws")
def _noise_vote(models, data, *, seed, batch_size, sigmas, draws):
    x, y = data.images(), data.y

    def rows(name):
        m = models[name]
        noisy = GaussianNoise(m, sigmas[name], seed=seed)
        return pd.DataFrame({"example": data.indices.cpu().numpy(), "sigma": float(sigmas[name]),
                             "clean_correct": (predict(m, x) == y).cpu().numpy(),
                             "draw_correct": (predict(noisy, x) == y).cpu().numpy(),
                             "vote_correct": (majority_vote(noisy, x, draws)[0] == y).cpu().numpy()})
    missing = set(models) - set(sigmas)
    if missing:
        raise InputError(f"noise_vote needs a σ for every model; none for {sorted(missing)}")
    return per_model({k: k for k in models}, rows)
