"""One-pixel (few-pixel) attack (Su, Vargas & Sakurai 2019): differential evolution over pixels."""
from __future__ import annotations

import torch

from ...checks import check_positive, check_positive_int
from ...errors import InputError
from ...threat import keep_layout
from ..base import register
from ...rng import rand, randint, randn


def apply_pixels(x: torch.Tensor, genomes: torch.Tensor) -> torch.Tensor:
    """Copies of ``x`` (M, C, H, W) with each genome's k pixels set: genomes (M, k, 2 + C) hold
    (row, column, colour...) with coordinates rounded down and colours in [0, 1]."""
    m, c, h, w = x.shape
    out = x.clone()
    ar = torch.arange(m, device=x.device)
    rows = genomes[..., 0].long().clamp(0, h - 1)
    cols = genomes[..., 1].long().clamp(0, w - 1)
    for j in range(genomes.shape[1]):  # over the k pixels of a candidate, not over examples
        out[ar, :, rows[:, j], cols[:, j]] = genomes[:, j, 2:].to(x.dtype)
    return out


@register("onepixel", kind="score-based", norms=(), outputs=("probs", "logits"))
def one_pixel(oracle, x: torch.Tensor, y: torch.Tensor, *, threat=None, pixels: int = 1, population: int = 400,
              generations: int = 100, scale: float = 0.5, targeted: bool = False,
              target: torch.Tensor | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
    """Change at most ``pixels`` pixels (all channels of each) by differential evolution.

    Paper: Su et al., "One Pixel Attack for Fooling Deep Neural Networks", IEEE TEVC 2019.
    Threat model: an L0 budget of ``pixels`` pixels, each set to any colour in [0, 1] (no ε-ball:
    pass no ``threat``); score-based: the attack sees the oracle's probabilities.

    Each example keeps a population of candidate solutions (row, column, colour) per pixel,
    initialised with uniform positions and colours drawn from N(0.5, 0.5) (the paper's
    N(128, 127) in 8-bit units). Each generation every member breeds a child by DE/rand/1,
    c = a + scale·(b − d) for three members drawn at random (without the paper's distinctness
    check, which at population 400 changes little), and the child replaces its parent if it lowers
    the probability of the true class (raises the target's). The whole population of every
    active example is one batched query per generation; an example stops once a candidate fools
    the model. Queries per example: population × (generations + 1) at most; with an oracle
    budget, only the generations that fit in it run.

    Parameters
    ----------
    oracle : QueryOracle with output "probs" or "logits"
    pixels : int, default 1 (the paper also uses 3 and 5)
    population : int, default 400;  generations : int, default 100;  scale : float, default 0.5
    targeted : bool;  target : Tensor (N,), required when targeted
    generator : torch.Generator, optional
        On any device (``advlab.rng``).

    Returns
    -------
    AttackResult with ``queries`` (N,).
    """
    check_positive_int(pixels=pixels, population=population, generations=generations)
    if population < 4:  # each trial vector mixes three other members: r1, r2, r3 distinct from the parent
        raise InputError(f"differential evolution needs a population of at least 4, got {population}")
    check_positive(scale, "scale")
    if oracle.budget is not None:  # the initial population and whole generations must fit
        if oracle.budget < population:
            raise InputError(f"a population of {population} needs {population} queries per example; "
                             f"the oracle allows {oracle.budget}")
        generations = min(generations, oracle.budget // population - 1)
    labels = target if targeted else y
    n, c, h, w = x.shape
    dev, p = x.device, population
    hi = torch.tensor([h - 1e-4, w - 1e-4] + [1.0] * c, device=dev)

    def random_genomes(b):
        pos = rand((b, p, pixels, 2), generator=generator, device=dev) * hi[:2]
        col = (0.5 + 0.5 * randn((b, p, pixels, c), generator=generator, device=dev)).clamp(0, 1)
        return torch.cat([pos, col], -1)

    def fitness(idx, genomes):  # genomes (B, P, k, D) -> (fitness (B, P), fooled (B, P))
        b = idx.numel()
        cand = apply_pixels(x[idx].repeat_interleave(p, 0), genomes.flatten(0, 1))
        scores = oracle(keep_layout(cand, x), idx.repeat_interleave(p))
        probs = scores.softmax(1) if oracle.output == "logits" else scores
        lab = labels[idx].repeat_interleave(p)
        f = probs.gather(1, lab[:, None]).squeeze(1)
        pred = probs.argmax(1)
        return (-f if targeted else f).view(b, p), (pred == lab if targeted else pred != lab).view(b, p)

    everyone = torch.arange(n, device=dev)
    pop = random_genomes(n)
    fit, fool = fitness(everyone, pop)
    done = fool.any(1)
    for _ in range(generations):
        active = (~done).nonzero().squeeze(1)
        if active.numel() == 0:
            break
        b = active.numel()
        pa = pop[active]
        r = randint(0, p, (3, b, p), generator=generator, device=dev)
        rows = torch.arange(b, device=dev)[:, None]
        child = pa[rows, r[0]] + scale * (pa[rows, r[1]] - pa[rows, r[2]])
        child = torch.minimum(child.clamp_min(0), hi)
        f_child, fool_child = fitness(active, child)
        better = f_child <= fit[active]
        pop[active] = torch.where(better[..., None, None], child, pa)
        fit[active] = torch.where(better, f_child, fit[active])
        fool[active] = torch.where(better, fool_child, fool[active]) | fool_child
        # keep a fooling child even where it did not lower the fitness (it fools: that is the goal)
        pop[active] = torch.where((fool_child & ~better)[..., None, None], child, pop[active])
        done[active] = fool[active].any(1)
    # per example: a fooling member if there is one, else the fittest
    score = torch.where(fool, torch.full_like(fit, -float("inf")), fit)
    best = pop[everyone, score.argmin(1)]
    return keep_layout(apply_pixels(x, best), x)
