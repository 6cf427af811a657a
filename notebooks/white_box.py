# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # White-box attacks
#
# A white-box attacker knows the model: its architecture, its weights and therefore its
# gradients. This chapter trains a classifier through advlab's checkpoint cache, then attacks it
# inside a threat model and measures how accuracy falls as the budget grows.
#
# **Threat model.** For a clean input $x \in [0,1]^d$ with label $y$, the attacker may submit any
#
# $$
# x' \in S(x) = \{\, x' : \|x' - x\|_p \le \varepsilon,\ 0 \le x' \le 1 \,\},
# $$
#
# with $p = \infty$ or $p = 2$ and $\varepsilon$ in pixel units of $[0, 1]$ (the model normalises
# internally, so $\varepsilon = 0.1$ means a tenth of the grey range, whatever the dataset). The
# **robust accuracy** is the fraction of test points for which *every* $x' \in S(x)$ is classified
# correctly; an attack gives an upper bound on it, because it finds some of the bad $x'$, not all.
#
# **FGSM** (Goodfellow et al., 2015) linearises the loss $L$ around $x$ and maximises the
# linearisation over the ball. For $p=\infty$ the maximiser of $\nabla_x L^\top \delta$ over
# $\|\delta\|_\infty \le \varepsilon$ is $\varepsilon\,\mathrm{sign}(\nabla_x L)$, so
#
# $$
# x_{\text{FGSM}} = \Pi_{[0,1]^d}\bigl(x + \varepsilon\,\mathrm{sign}(\nabla_x L(f(x), y))\bigr),
# $$
#
# and for $p = 2$ the step is $\varepsilon\,\nabla_x L / \|\nabla_x L\|_2$. One forward and one
# backward pass per example: the cheapest first-order attack, and a weak one wherever the loss
# is not linear over the ball.

# %% tags=["remove-cell"]
from myst_nb import glue

import advlab
from advlab import ThreatModel, plotting
from advlab.config import chapter_config
from advlab.data import load_dataset
from advlab.evaluate import accuracy, accuracy_table, clean_table, format_accuracy, sweep
from advlab.training import TrainConfig, load_or_train

# %% tags=["parameters"]
# None: the profile's value (see the table below)
profile = "quick"
seed = None
dataset = None
model = None
epochs = None
train_subset = None
n_test = None
norm = None
eps = None
eps_grid = None
batch_size = None
n_show = None

# %% [markdown]
# The parameters of this run, after validation (re-run the chapter with other values through
# `advlab run white-box --profile quick -p eps 0.2`; see the introduction):

# %% tags=["remove-input"]
cfg = chapter_config("white-box", globals())
device = advlab.default_device()
threat = ThreatModel(cfg.norm, cfg.eps)
cfg.table()

# %% [markdown]
# ## The model
#
# The classifier is trained by `load_or_train`, which stores the checkpoint under a key derived
# from its configuration: re-running the chapter loads it instead of training again. Clean
# accuracy is measured on a seeded, class-stratified subset of the test split; the interval is
# the exact (Clopper-Pearson) 95% interval for a binomial proportion.

# %% tags=["remove-input"]
net, info = load_or_train(
    TrainConfig(dataset=cfg.dataset, model=cfg.model, epochs=cfg.epochs,
                train_subset=cfg.train_subset, seed=cfg.seed),
    device=device,
)
test = load_dataset(cfg.dataset, "test", device=device).subset(cfg.n_test, seed=cfg.seed, stratified=True)
clean_acc = accuracy(clean_table(net, test), "correct")
glue("clean_acc", format_accuracy(clean_acc.iloc[0]), display=False)
glue("n_test", f"{len(test):,}", display=False)
glue("model_name", f"{cfg.model} on {cfg.dataset}", display=False)
accuracy_table(clean_acc, index=())

# %% [markdown]
# The {glue:text}`model_name` model classifies {glue:text}`clean_acc` of the
# {glue:text}`n_test` test images correctly (95% interval in brackets).
#
# ## Accuracy against the FGSM budget
#
# Each point is the accuracy on the same test subset under FGSM with budget $\varepsilon$; the band
# is the 95% Clopper-Pearson interval. At $\varepsilon=0$ the attack cannot move, so the curve
# starts at the clean accuracy.

# %% tags=["remove-input"]
rows = sweep(net, test, attacks={"fgsm": {}}, norm=cfg.norm, eps_grid=cfg.eps_grid,
             batch_size=cfg.batch_size, seed=cfg.seed)
fgsm_acc = accuracy(rows, by=["attack", "norm", "eps"])
ax = plotting.accuracy_vs_eps(fgsm_acc, title=f"FGSM on {cfg.model} ({cfg.dataset}, n = {len(test)})")

# %% tags=["remove-input"]
headline = accuracy(rows[rows.eps == cfg.eps], "adv_correct").iloc[0]
glue("fgsm_acc", format_accuracy(headline), display=False)
glue("eps", f"{cfg.eps:g}", display=False)
glue("threat", str(threat), display=False)
accuracy_table(fgsm_acc)

# %% [markdown]
# Under the {glue:text}`threat`, FGSM leaves {glue:text}`fgsm_acc` of the examples correctly
# classified. This is an upper bound on the robust accuracy: iterative attacks (PGD, later in
# this chapter's sequel) find adversarial inputs where the single linearised step does not.
#
# ## What the attack does to the images
#
# Top row: clean test images with their label and prediction. Middle: the perturbation
# $x_{\text{FGSM}} - x$, rescaled from $[-\varepsilon, \varepsilon]$ to the full grey range (it
# saturates at $\pm\varepsilon$ wherever clipping to $[0,1]$ does not bite). Bottom: the adversarial
# input and the model's prediction, in red when wrong.

# %% tags=["remove-input"]
fig = plotting.attack_grid(net, test, attack="fgsm", threat=threat, n=cfg.n_show)
