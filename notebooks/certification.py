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
# # Certification: bounds, exact verification, randomized smoothing
#
# Every robust accuracy in the earlier chapters came from an attack. An attack that fails proves
# nothing: a stronger one might succeed. Attacked accuracy is therefore an **upper bound** on the
# true robust accuracy. A **certificate** proves that no input of the set changes the prediction,
# so certified accuracy is a **lower bound**. On the same examples and the same threat model,
#
# $$
# \text{certified accuracy} \;\le\; \text{true robust accuracy} \;\le\; \text{attacked accuracy}.
# $$
#
# This chapter builds the certifiers the stability survey presents, proves them sound on the
# book's models, and measures how wide the gap between the two bounds is.
#
# - **Interval bound propagation (IBP)** (Gowal et al. 2018) pushes a box through the network:
#   an affine layer maps the centre exactly and the radius through $|W|$, a ReLU clips both ends,
#   max pooling pools them. It costs about two forward passes, and it is loose.
# - **CROWN** (Zhang et al. 2018), the backward form of the convex outer bound of Wong & Kolter
#   (2018), bounds each unstable ReLU between two lines and propagates the quantity to bound
#   backwards to the input. Here that quantity is the margin $z_y - z_j$ for every other class
#   $j$. Max pooling gets lines too: below, the window's input with the largest lower bound;
#   above, that input where it dominates the window, else the window's largest upper bound. The
#   pre-activation bounds of every layer are computed the same way, layer by layer, and every
#   margin keeps the better of CROWN's bound and the interval one.
# - **α-CROWN** (Xu et al. 2021): any lower line with slope in $[0, 1]$ is sound for an unstable
#   ReLU, so the slopes can be optimised, one per example, margin and neuron, by gradient ascent
#   on the bound itself ({glue:text}`alpha_steps` projected Adam steps from CROWN's choice). As
#   published, the bounds of every intermediate layer get slopes of their own, optimised with the
#   final ones, so the pre-activation bounds tighten too; every step is sound and the best bound
#   of each margin is kept.
# - **Exact verification** (Tjeng et al. 2019) writes the smallest margin over the ball as a
#   mixed-integer linear program, one binary variable per unstable ReLU. It is exact, but its
#   cost grows exponentially with the number of unstable ReLUs. Before branching, the
#   intermediate bounds are tightened by linear programming as Tjeng et al. do: every neuron
#   still unstable is minimised and maximised over the LP relaxation of the layers below it.
# - **Randomized smoothing** (Cohen, Rosenfeld & Kolter 2019) certifies a different classifier,
#   the smoothed $g(x) = \arg\max_c P(f(x + \delta) = c)$ with $\delta \sim N(0, \sigma^2 I)$. If
#   the top class has probability at least $\underline{p_A} > 1/2$, no L2 perturbation smaller
#   than $\sigma\,\Phi^{-1}(\underline{p_A})$ changes $g$'s prediction. The probability is
#   estimated by Monte Carlo with an exact binomial bound, so each certificate holds with
#   probability $1 - \alpha$.

# %% tags=["remove-cell"]
import pandas as pd
from myst_nb import glue

import advlab
from advlab import plotting
from advlab.chapters import certification, chapter_config
from advlab.data import dataset_spec
from advlab.evaluate import certified_curve

# %% tags=["parameters", "remove-cell"]
# None: the profile's value (see the table below)
profile = "quick"
seed = None
dataset = None
eps_list = None
ibp_train_eps = None
epochs = None
train_subset = None
lr = None
pgd_steps = None
ibp_kappa = None
ibp_warmup = None
ibp_ramp = None
mlp_hidden = None
n_cert = None
full_alpha = None
n_milp = None
milp_seconds = None
apgd_steps = None
apgd_targets = None
square_queries = None
toy_width = None
toy_eps = None
toy_samples = None
mnist_sigmas = None
cifar_sigmas = None
cnn_width = None
bound_radii = None
n_bound = None
cifar_model = None
cifar_width = None
cifar_epochs = None
cifar_subset = None
n_smooth = None
n0 = None
n_samples = None
alpha = None
radii = None
attack_radii = None
smoothadv_steps = None
smoothadv_draws = None
cost_widths = None
cost_n = None
batch_size = None

# %% [markdown]
# The parameters of this run, after validation. To re-run the chapter with other values:
# `advlab run certification --profile quick -p eps_list 0.05,0.1` (see the introduction).

# %% tags=["remove-input"]
cfg = chapter_config("certification", globals())
pd.set_option("display.max_colwidth", 200)
device = advlab.default_device()
plan = certification.plan(cfg)  # every certificate and attack below: from the result cache, or computed here
dataset_name = dataset_spec(cfg.dataset).title
glue("dataset", dataset_name, display=False)
cfg.table()

# %% [markdown]
# ## The adversarial polytope in two dimensions
#
# A random network maps the plane to the plane, with two hidden layers of {glue:text}`toy_width`
# ReLUs. The grey cloud is the image of the input box $[0.5 - \epsilon, 0.5 + \epsilon]^2$,
# $\epsilon$ = {glue:text}`toy_eps`, traced by a dense grid: the set an attack explores. The red
# box is IBP's bound on it. The blue polygon intersects CROWN's upper bounds on $c \cdot f$ for 72
# directions $c$: the convex outer bound. Both contain the cloud. CROWN's polygon follows the
# cloud's shape; IBP's box only bounds each coordinate separately.

# %% tags=["remove-input"]
toy = certification.toy_network(cfg.toy_width, cfg.seed)
toy_sets = certification.toy_sets(toy, cfg.toy_eps, cfg.toy_samples)
glue("toy_width", str(cfg.toy_width), display=False)
glue("toy_eps", f"{cfg.toy_eps:g}", display=False)
fig = plotting.reachable_sets(toy_sets, title="Output set of a random 2-D ReLU network and two outer bounds")

# %% [markdown]
# ## Certified, exact and attacked accuracy on {glue:text}`dataset`
#
# Two architectures are trained four ways for each L∞ budget: Wong & Kolter's small ConvNet, and a
# small MLP ({glue:text}`mlp_hidden` hidden ReLUs) that the MILP can decide exactly.
#
# - *Standard* training is plain cross-entropy.
# - *PGD training* uses {glue:text}`pgd_steps`-step PGD at the certified ε.
# - *IBP training* follows Gowal et al.: κ·CE(clean) + (1 − κ)·CE(worst-case margins). ε ramps
#   linearly from 0 to the training ε and κ from 1 to {glue:text}`ibp_kappa`, over
#   {glue:text}`ibp_ramp` of the steps after a warm-up of {glue:text}`ibp_warmup`. The training ε
#   exceeds the certified one (Gowal et al.: 0.2 for 0.1 and 0.4 for 0.3).
# - *CROWN-IBP training* (Zhang et al. 2020) keeps that loss and schedule, but bounds the
#   margins by β·CROWN-IBP + (1 − β)·IBP, where CROWN-IBP is CROWN's backward pass from IBP's
#   intermediate bounds; β falls from 1 to 0 while ε ramps (their MNIST setting). Early in
#   training, when IBP's bound is hopelessly loose, the tighter bound gives a useful gradient.
#
# Every model is evaluated on the same {glue:text}`n_cert` class-stratified test digits in the ball
# of each budget (pixels in [0, 1]):
#
# - certified by IBP, CROWN and α-CROWN's final-layer variant (only the margins' slopes optimised,
#   the intermediate bounds CROWN's), and by α-CROWN as published on the architectures of
#   `full_alpha` ({glue:text}`full_alpha`: it costs about {glue:text}`alpha_steps` CROWN passes);
# - attacked by APGD-CE, APGD-T ({glue:text}`apgd_steps` iterations) and Square
#   ({glue:text}`square_queries` queries) as a cascade, escalated where the gradients mislead;
# - for the MLP's first {glue:text}`n_milp` digits, decided exactly by the MILP. A digit already
#   certified is robust, and one an attack fools is not. The others go to the solver, with at most
#   {glue:text}`milp_seconds` s each.
#
# Intervals are 95% Clopper-Pearson.

# %% tags=["remove-input"]
sandwich_evals = certification.sandwich_evaluations(cfg)  # cached by `advlab precompute certification`
rows = certification.sandwich_rows({key: {part: plan.result(ev, device) for part, ev in evs.items()}
                                    for key, evs in sandwich_evals.items()})
summary = certification.sandwich_summary(rows)
sandwich_table = certification.sandwich_table(summary)
glue("mlp_hidden", " + ".join(str(h) for h in cfg.mlp_hidden), display=False)
glue("pgd_steps", str(cfg.pgd_steps), display=False)
glue("ibp_kappa", f"{cfg.ibp_kappa:g}", display=False)
glue("ibp_ramp", f"{cfg.ibp_ramp:.0%}", display=False)
glue("ibp_warmup", f"{cfg.ibp_warmup:.0%}", display=False)
glue("n_cert", str(cfg.n_cert), display=False)
glue("n_milp", str(cfg.n_milp), display=False)
glue("milp_seconds", f"{cfg.milp_seconds:g}", display=False)
glue("apgd_steps", str(cfg.apgd_steps), display=False)
glue("square_queries", str(cfg.square_queries), display=False)
glue("alpha_steps", str(certification.ALPHA_STEPS), display=False)
glue("full_alpha", ", ".join(cfg.full_alpha), display=False)
sandwich_table

# %% tags=["remove-input"]
fig = plotting.sandwich(summary, title="Certified ≤ exact ≤ attacked accuracy (95% CI)")

# %% [markdown]
# **Soundness on these models.** Each count below must be zero; the chapter recomputes them at
# every run. A certified digit fooled by an attack, or refuted by the MILP, would be a bug in a
# certifier.

# %% tags=["remove-input"]
checks = certification.soundness(rows)
pd.DataFrame({"examples": checks}).rename_axis("violation")

# %% [markdown]
# **Against the published numbers.** Wong & Kolter certify their small ConvNet at L∞ ε = 0.1 with a
# robust-error bound of 5.8%, i.e. at least 94.2% certified accuracy. CROWN-IBP (Zhang et al.
# 2020) reaches 6.7% verified error at ε = 0.3, i.e. 93.3%. Their models train for 100 to 200
# epochs on all 60,000 digits. This run's best certificates of the small ConvNet trained by IBP
# and by CROWN-IBP:

# %% tags=["remove-input"]
certification.published_comparison(summary)

# %% [markdown]
# Three readings of the table:
#
# - On standard and PGD-trained networks, nearly every ReLU is unstable over the ball. Both
#   relaxations are then loose, and the certified accuracy sits far below the attacked one; the
#   MILP closes the gap only where it finishes in time.
# - IBP training makes the network's own bounds tight, and its certified accuracy is close to its
#   attacked accuracy. On an IBP-trained network CROWN's lines alone can be looser than IBP's
#   boxes: the network has been trained to make the interval bounds tight, not CROWN's lines
#   (Zhang et al. 2020 make the same observation). CROWN here keeps the better of the two for
#   every margin, so its column is never below IBP's.
# - α-CROWN is never below CROWN: it starts from CROWN's slopes and keeps the best bound it
#   meets, on the intermediate layers as on the margins.
#
# **What the MILP was given and what it decided.** For each MLP, the examples no certificate and no
# attack decided; the binary variables per example before and after the LP tightening, the LPs
# solved and the mean time (the LPs may take a quarter of the time limit, which covers them too):

# %% tags=["remove-input"]
certification.milp_table(rows)

# %% [markdown]
#
# ## Randomized smoothing
#
# Base classifiers trained with Gaussian noise at each σ, as Cohen et al. do:
#
# - the book's small CNN (two convolutions with max pooling, width {glue:text}`cnn_width`) on
#   {glue:text}`dataset`;
# - a {glue:text}`cifar_model` on CIFAR-10, trained for {glue:text}`cifar_scale`.
#
# CERTIFY then runs on {glue:text}`n_smooth` test images per dataset and σ, with
# n0 = {glue:text}`n0` selection samples, n = {glue:text}`n_samples` estimation samples and
# α = {glue:text}`alpha`. The largest radius n samples can certify is σ Φ⁻¹(α^{1/n}); Cohen et
# al.'s n = 100,000 reaches further. Dashed lines give the smoothed classifier's empirical accuracy
# under **SmoothAdv** (Salman et al. 2019): PGD-L2 on its Monte-Carlo soft prediction, with
# {glue:text}`smoothadv_steps` steps and {glue:text}`smoothadv_draws` noise draws per step, then
# scored by PREDICT with n samples. Stars are Cohen et al.'s CIFAR-10 numbers at σ = 0.25
# (ResNet-110, 500 test images, n = 100,000).

# %% tags=["remove-input"]
smooth_evals = certification.smoothing_evaluations(cfg)  # cached by `advlab precompute certification`
smooth_rows = {key: plan.result(ev, device) for key, ev in smooth_evals.items()}
attacked_rows = {key: plan.result(ev, device) for key, ev in certification.smoothadv_evaluations(cfg).items()}
curves = pd.concat(
    [certified_curve(r, cfg.radii).assign(dataset=dataset_spec(ds).title, sigma=s, kind="certified")
     for (ds, s), r in smooth_rows.items()]
    + [certification.empirical_curve(r).assign(dataset=dataset_spec(ds).title, sigma=s, kind="empirical")
       for (ds, s), r in attacked_rows.items()], ignore_index=True)
cohen = {"Cohen et al., σ = 0.25": (dataset_spec("cifar10").title, certification.COHEN_CIFAR["radii"],
                                    certification.COHEN_CIFAR["certified"])}
glue("cifar_model", cfg.cifar_model, display=False)
glue("cifar_scale", certification.cifar_scale(cfg), display=False)
glue("n_smooth", str(cfg.n_smooth), display=False)
glue("n0", str(cfg.n0), display=False)
glue("n_samples", f"{cfg.n_samples:,}", display=False)
glue("alpha", f"{cfg.alpha:g}", display=False)
glue("smoothadv_steps", str(cfg.smoothadv_steps), display=False)
glue("smoothadv_draws", str(cfg.smoothadv_draws), display=False)
fig = plotting.smoothing_curves(curves, reference=cohen, title="Randomized smoothing: certified L2 accuracy (95% CI)")

# %% [markdown]
# The same certificates as a table: certified accuracy at each radius, the abstention rate
# (CERTIFY returns no class when $\underline{p_A} \le 1/2$), and the median certified radius of
# the correctly certified images.

# %% tags=["remove-input"]
smooth_table = certification.smoothing_table(smooth_rows, cfg.radii)
smooth_table

# %% [markdown]
# Cohen et al.'s CIFAR-10 classifier at σ = 0.25 certifies 74.8 / 60.0 / 42.8 / 26.6% at radius
# 0 / 0.25 / 0.5 / 0.75. This run's σ = 0.25 classifier, with its smaller network, training and
# sample count, certifies:

# %% tags=["remove-input"]
certification.cohen_comparison(smooth_rows)

# %% [markdown]
# ### The small CNN itself, certified beside its smoothed version
#
# Smoothing certifies $g$, a different classifier from the network $f$ it is built on. The
# small CNN's max pooling is no obstacle to bound propagation (its relaxation is in the
# introduction), so IBP and CROWN can certify $f$ itself, deterministically, in the same L2 balls
# (∩ [0, 1]) and on {glue:text}`n_bound` of the same examples. Certified accuracy (%, 95% CI):

# %% tags=["remove-input"]
glue("cnn_width", f"{cfg.cnn_width:g}", display=False)
glue("n_bound", str(cfg.n_bound), display=False)
cnn_rows = plan.tables("small CNN bounds", device)
certification.cnn_comparison(smooth_rows, cnn_rows, cfg.dataset)

# %% [markdown]
# IBP's box hull of the L2 ball is the L∞ box of the same radius, hopeless at these radii on a
# network not trained for it; CROWN bounds the linear forms over the ball itself and certifies
# the network at small radii. Smoothing certifies larger radii, for the smoothed classifier and
# with probability 1 − α; the deterministic certificate holds for the network readers deploy.

# %% [markdown]
# ## What a certificate costs
#
# Time per example of each certificate and of the attack ensemble, on this machine
# ({glue:text}`device`), from the runs above:

# %% tags=["remove-input"]
glue("device", str(device), display=False)
certification.cost_table(rows, smooth_rows)

# %% [markdown]
# And how IBP and CROWN grow with the network, on small ConvNets of several widths with random
# weights ({glue:text}`cost_n` digits, L∞ ε = {glue:text}`cost_eps`). Random weights leave most
# ReLUs unstable, which is CROWN's worst case. IBP costs a few forward passes whatever the width.
# CROWN bounds every unstable neuron of every layer with a backward pass from that neuron, so its
# cost grows with the number of unstable ReLUs times the size of the layers below them.

# %% tags=["remove-input"]
glue("cost_n", str(cfg.cost_n), display=False)
glue("cost_eps", f"{cfg.eps_list[0]:g}", display=False)
certification.bound_cost(plan.result("bound cost", device))
