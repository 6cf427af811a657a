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
# # Black-box attacks
#
# A deployed model rarely hands out its weights. A **black-box** attacker submits inputs and
# reads what the service answers: a score vector, the top label with its probability, or the
# label alone. This chapter attacks the white-box chapter's models in that setting, with the
# attacks of two reports (NES and noise injection in the VGG-19 report; the one-pixel attack and
# NATTACK in the stability survey) and the field's standards (the Square attack, HopSkipJump,
# transfer from surrogate models), and shows why black-box attacks belong in every robustness
# evaluation: they see through defenses that only break gradients.
#
# ## The threat model, and the oracle that enforces it
#
# The ball is the white-box chapter's,
# $S(x) = \{x' : \|x' - x\|_p \le \varepsilon,\ 0 \le x' \le 1\}$ with $\varepsilon$ in pixel
# units of $[0, 1]$, but the attacker's access changes. Every black-box attack here receives the
# model only through a **query oracle** that answers a batch of inputs under `torch.no_grad()` in
# one output mode (`logits`, `probs`, `top1`: the label and its probability, or `label`),
# counts the queries of every example, and refuses a query beyond the example's budget. An
# attack never sees a gradient or a weight, and the library checks that it cannot (a test runs
# each one on a model whose backward pass raises). An example stops querying once it is fooled,
# so its **query count** is the price of its adversarial example; curves against the budget below
# come from one run, by reading at each budget which examples were fooled within it.
#
# ## Seven attacks
#
# **NES** (Ilyas et al., 2018) estimates the gradient of the loss $L$ from scores alone, with
# antithetic Gaussian samples $u_i \sim \mathcal N(0, I)$,
#
# $$
# \hat g = \frac{1}{n\sigma} \sum_{i=1}^{n/2} \bigl(L(x + \sigma u_i) - L(x - \sigma u_i)\bigr)\, u_i ,
# $$
#
# and takes PGD steps with momentum along it ($n + 1$ queries per step).
#
# **Square** (Andriushchenko et al., 2020) is a random search: starting from vertical stripes of
# $\pm\varepsilon$, each query redraws one random square window of side $s$ to a vertex of the
# L∞ ball and keeps it if the margin $z_y - \max_{k \ne y} z_k$ drops; $s$ shrinks on a fixed
# schedule. One query per iteration, no gradient estimate at all.
#
# **NATTACK** (Li et al., 2019) learns a distribution instead of a point: perturbations
# $x' = \Pi_{S(x)}\bigl(\tfrac12(\tanh(\operatorname{artanh}(2x - 1) + \mu + \sigma\epsilon) + 1)\bigr)$,
# $\epsilon \sim \mathcal N(0, I)$, with $\mu$ moved by natural-evolution updates from the
# standardised scores of a population of samples. It was designed to break defenses whose
# gradients are useless.
#
# **One-pixel** (Su et al., 2019) changes at most $k$ pixels, each to any colour. Differential
# evolution keeps a population of candidate (row, column, colour) tuples per example; children
# $a + F (b - c)$ replace their parent when they lower the true class's probability. There is no
# ε-ball: the threat model is an L0 budget of $k$ pixels.
#
# **HopSkipJump** (Chen et al., 2020) needs only labels. It starts from a misclassified point,
# bisects to the decision boundary, estimates the boundary's normal from the labels of random
# probes around it, steps along it and bisects back, shrinking $\|x' - x\|_2$ as queries accrue.
#
# **Gaussian noise injection** (the VGG-19 report) submits $x + \sigma \mathcal N(0, I)$, clipped
# to the box; the worst of $K$ draws is an attack with $K$ queries.
#
# **Transfer** attacks spend no query at all: craft the example white-box on a **surrogate** the
# attacker trained, and submit it. MI-FGSM (Dong et al., 2018) accumulates L1-normalised
# gradients with momentum, which makes its examples transfer better than PGD's.

# %% tags=["remove-cell"]
import pandas as pd
from myst_nb import glue

import advlab
from advlab import ThreatModel, plotting
from advlab.chapters import black_box, chapter_config
from advlab.data import dataset_spec
from advlab.evaluate import (accuracy, accuracy_by_queries, accuracy_table, display_table, format_accuracy, nearest,
                             noise_summary, norm_summary, query_grid, query_summary, transfer_summary,
                             transfer_table)

# %% tags=["parameters", "remove-cell"]
# None: the profile's value (see the table below)
profile = "quick"
seed = None
dataset = None
mnist_epochs = None
mnist_train_subset = None
cifar_model = None
cifar_width = None
cifar_epochs = None
cifar_train_subset = None
n_test = None
eps = None
cifar_n_test = None
cifar_eps_linf = None
queries = None
nes_samples = None
nes_sigma = None
square_p_init = None
nattack_population = None
nattack_sigma = None
nattack_lr = None
apgd_steps = None
pgd_steps = None
onepixel_n_test = None
onepixel_pixels = None
onepixel_population = None
onepixel_generations = None
noise_sigmas = None
noise_draws = None
noise_l2_grid = None
transfer_steps = None
hsja_n_test = None
hsja_budgets = None
deepfool_steps = None
cw_steps = None
cw_search_steps = None
cw_lr = None
cw_initial_const = None
squeeze_bits = None
batch_size = None
n_show = None

# %% [markdown]
# The parameters of this run, after validation. To re-run the chapter with other values:
# `advlab run black-box --profile quick -p queries 5000` (see the introduction).

# %% tags=["remove-input"]
cfg = chapter_config("black-box", globals())
pd.set_option("display.max_colwidth", 200)
device = advlab.default_device()
mnist_threat = ThreatModel("linf", cfg.eps)
cifar_threat = ThreatModel("linf", cfg.cifar_eps_linf)
plan = black_box.plan(cfg)  # the attacks on the full test subsets: from the result cache, or computed here
glue("queries", f"{cfg.queries:,}", display=False)
glue("cifar_threat", str(cifar_threat), display=False)
glue("mnist_threat", str(mnist_threat), display=False)
glue("mnist_eps", f"{cfg.eps:g}", display=False)
glue("nes_samples", str(cfg.nes_samples), display=False)
cfg.table()

# %% [markdown]
# ## The models
#
# The white-box chapter's models, from the same checkpoint cache (the same profile trains them
# once for both chapters): the report's VGG on CIFAR-10, and an MLP, a small CNN and LeNet-5 on
# {glue:text}`dataset`. Clean accuracy on the seeded, class-stratified test subsets attacked
# below, with exact 95% intervals.

# %% tags=["remove-input"]
test = plan.data("clean mnist", device)
ctest = plan.data("clean cifar", device)
dataset_name = dataset_spec(cfg.dataset).title
glue("dataset", dataset_name, display=False)
glue("vgg_name", f"{cfg.cifar_model.upper()} at width {cfg.cifar_width:g}", display=False)
clean = pd.concat({dataset_name: accuracy(plan.result("clean mnist", device), "correct", by="model"),
                   "CIFAR-10": accuracy(plan.result("clean cifar", device), "correct", by="model")},
                  names=["dataset"]).reset_index(level=0)
accuracy_table(clean, index=("dataset", "model"))

# %% [markdown]
# ## NES on the report's VGG, and on the MNIST models
#
# The VGG-19 report attacked its VGG with NES and measured **4.0%** accuracy left on the attacked
# test set (it does not state the budget). Here NES attacks {glue:text}`vgg_name` in the
# {glue:text}`cifar_threat` with at most {glue:text}`queries` queries per example (logit
# outputs; {glue:text}`nes_budget`), and the three {glue:text}`dataset` models in the
# {glue:text}`mnist_threat` with the same budget. A robust example is one classified correctly
# clean that NES did not fool within its budget.

# %% tags=["remove-input"]
glue("nes_budget", f"{cfg.nes_samples} samples per estimate at σ = {cfg.nes_sigma:g}, step ε/5, momentum 0.9",
     display=False)
cifar_runs = plan.tables("cifar", device)
mnist_nes = plan.result("mnist NES", device)
nes_table = pd.concat({
    ("CIFAR-10", cfg.cifar_model, str(cifar_threat)): accuracy(cifar_runs["NES"]),
    **{(dataset_name, m, str(mnist_threat)): accuracy(g) for m, g in mnist_nes.groupby("model", sort=False)},
}, names=["dataset", "model", "threat model"]).reset_index(level=[0, 1, 2])
glue("nes_vgg", format_accuracy(accuracy(cifar_runs["NES"]).iloc[0]), display=False)
mnist_nes_acc = accuracy(mnist_nes, by="model").set_index("model").accuracy
glue("nes_mnist_range", f"{mnist_nes_acc.min():.1%} ({mnist_nes_acc.idxmin()}) to {mnist_nes_acc.max():.1%} "
                        f"({mnist_nes_acc.idxmax()})", display=False)
accuracy_table(nes_table, index=("dataset", "model", "threat model"))

# %% [markdown]
# NES leaves {glue:text}`nes_vgg` of the CIFAR-10 subset (the report: 4.0%), without a single
# gradient. On {glue:text}`dataset` it leaves from {glue:text}`nes_mnist_range` at
# ε = {glue:text}`mnist_eps`; the white-box chapter's PGD curves at the same ε are the
# comparison. A gradient estimate from {glue:text}`nes_samples` samples is noisier than the true
# gradient, so at a fixed budget NES is an upper bound on the white-box figure, not an
# equal.
#
# ## Square, NES and NATTACK side by side
#
# The three score-based attacks on the VGG, same examples, same {glue:text}`cifar_threat`,
# same budget of {glue:text}`queries` queries per example (Square: initial square fraction
# {glue:text}`square_p`; NATTACK: {glue:text}`nattack_budget`). The dashed line is the
# white-box yardstick: APGD-CE with {glue:text}`apgd_steps` iterations (gradients, no query
# limit) on the same examples. The bands are 95% Clopper-Pearson intervals; each curve is one run,
# read at every budget.

# %% tags=["remove-input"]
glue("square_p", f"{cfg.square_p_init:g}", display=False)
glue("nattack_budget", f"population {cfg.nattack_population}, σ = {cfg.nattack_sigma:g}, "
                       f"learning rate {cfg.nattack_lr:g}", display=False)
glue("apgd_steps", str(cfg.apgd_steps), display=False)
apgd = plan.result("cifar APGD", device)
score_rows = pd.concat(cifar_runs, names=["attack label"]).reset_index(level=0)
budget_curves = accuracy_by_queries(score_rows, query_grid(cfg.queries), by="attack label")
fig = plotting.accuracy_vs_queries(budget_curves, hue="attack label",
                                   yardsticks={f"APGD-CE, {cfg.apgd_steps} steps (white-box)": accuracy(apgd).iloc[0]},
                                   title=f"{cfg.cifar_model} on CIFAR-10, {cifar_threat} (n = {len(ctest)})")

# %% tags=["remove-input"]
spent = query_summary(score_rows, by="attack label").set_index("attack label")
final = accuracy(score_rows, by="attack label").set_index("attack label")
side = pd.concat([final, spent], axis=1)
glue("apgd_vgg", format_accuracy(accuracy(apgd).iloc[0]), display=False)
glue("query_prose", black_box.query_prose(spent, final, accuracy(apgd).iloc[0], cfg.nes_samples + 1, cfg.queries),
     display=False)
display_table(side, {"accuracy": ("accuracy", "{:.1%}"), ("ci_low", "ci_high"): ("95% CI", "[{:.1%}, {:.1%}]"),
                     "fooled": ("fooled", None), "median": ("median queries", "{:.0f}"),
                     ("median_low", "median_high"): ("95% CI (median)", "[{:.0f}, {:.0f}]"),
                     "mean": ("mean queries", "{:.0f}"), ("mean_low", "mean_high"): ("95% CI (mean)",
                                                                                       "[{:.0f}, {:.0f}]")})

# %% [markdown]
# Queries are counted on the examples each attack fooled (classified correctly clean).
# {glue:text}`query_prose` (APGD: {glue:text}`apgd_vgg`.)
#
# ## One, three, five pixels
#
# The few-pixel attack on {glue:text}`onepixel_n` CIFAR-10 test images (probability outputs;
# differential evolution with {glue:text}`onepixel_budget`). The success rate is over the
# correctly classified images, with its 95% interval.

# %% tags=["remove-input"]
pixel_set = plan.data(("onepixel", cfg.onepixel_pixels[0]), device)
glue("onepixel_n", str(len(pixel_set)), display=False)
glue("onepixel_budget", f"a population of {cfg.onepixel_population} per example for at most "
                        f"{cfg.onepixel_generations} generations, "
                        f"{cfg.onepixel_population * (cfg.onepixel_generations + 1):,} queries", display=False)
pixel_results = plan.tables("onepixel", device)
pixel_runs = pd.concat(pixel_results, names=["pixels"]).reset_index(level=0)
pixel_success = accuracy(pixel_runs[pixel_runs.clean_correct], "success", by="pixels").set_index("pixels")
pixel_table = pd.concat([pixel_success, query_summary(pixel_runs, by="pixels").set_index("pixels")], axis=1)
glue("onepixel_1", f"{pixel_success.accuracy.iloc[0]:.1%}", display=False)
glue("onepixel_k", f"{pixel_success.accuracy.iloc[-1]:.1%}", display=False)
glue("onepixel_kmax", str(pixel_success.index[-1]), display=False)
display_table(pixel_table, {"n": ("n (correct)", None), "accuracy": ("success", "{:.1%}"),
                            ("ci_low", "ci_high"): ("95% CI", "[{:.1%}, {:.1%}]"),
                            "median": ("median queries", "{:.0f}"),
                            ("median_low", "median_high"): ("95% CI (median)", "[{:.0f}, {:.0f}]")})

# %% [markdown]
# One pixel out of 1,024 fools the VGG on {glue:text}`onepixel_1` of the images it classified
# correctly, and {glue:text}`onepixel_kmax` pixels on {glue:text}`onepixel_k`. (Su et al. report
# 68.7% on their all-convolutional network, with a population of 400 for up to 100 generations:
# the paper profile's setting.) Below, the first correctly classified images of the subset: the
# clean row, then each attack's result with the changed pixels circled; a red prediction fooled
# the model.

# %% tags=["remove-input"]
fig = plotting.pixel_attack_grid({f"{k} pixel{'s' if k > 1 else ''}": rows for k, rows in pixel_results.items()},
                                 pixel_set, n=cfg.n_show,
                                 title=f"few-pixel attacks on {cfg.cifar_model} (changed pixels circled)")

# %% [markdown]
# ## Noise is not an attack: Gaussian noise against adversarial perturbations at equal norm
#
# The VGG-19 report measured its VGG under Gaussian noise of σ = 0.1 and found **42.57%**
# accuracy left. Below, the σ sweep on the CIFAR-10 subset (label-only: each draw is one query):
# the accuracy under one random draw, averaged over {glue:text}`noise_draws` draws (its
# interval is a t-interval over examples, since the draws of one image are not independent),
# and under the worst of those draws, the attack with {glue:text}`noise_draws` queries. Beside
# them, the noise's median L2 and L∞ norms, and the accuracy PGD-L2 ({glue:text}`pgd_steps`
# steps) leaves when it may spend a perturbation of the *same* L2 norm.

# %% tags=["remove-input"]
glue("noise_draws", str(cfg.noise_draws), display=False)
glue("pgd_steps", str(cfg.pgd_steps), display=False)
noise = noise_summary(plan.result("noise", device))
pgd_l2 = accuracy(plan.result("noise PGD-L2", device), by="eps").set_index("eps")
noise["pgd_equal_l2"] = pgd_l2.accuracy.loc[noise.median_l2].to_numpy()
report_sigma = nearest(noise.index, black_box.REPORT_NOISE_SIGMA)
glue("noise_report", f"{noise.mean_accuracy[report_sigma]:.1%} at σ = {report_sigma:g}", display=False)
glue("noise_report_l2", f"{noise.median_l2[report_sigma]:.2f}", display=False)
glue("noise_report_pgd", f"{noise.pgd_equal_l2[report_sigma]:.1%}", display=False)
display_table(noise, {"median_l2": ("noise L2 (median)", "{:.2f}"), "median_linf": ("noise L∞ (median)", "{:.3f}"),
                      "mean_accuracy": ("accuracy, one draw (mean)", "{:.1%}"),
                      ("mean_low", "mean_high"): ("95% CI", "[{:.1%}, {:.1%}]"),
                      "worst_accuracy": ("accuracy, worst of K", "{:.1%}"),
                      ("worst_low", "worst_high"): ("95% CI ", "[{:.1%}, {:.1%}]"),
                      "pgd_equal_l2": ("PGD-L2 at the same L2", "{:.1%}")})

# %% [markdown]
# The VGG keeps {glue:text}`noise_report` under one random draw (the report: 42.57% at σ = 0.1),
# with noise of median L2 norm {glue:text}`noise_report_l2`; PGD with a perturbation of that
# norm leaves {glue:text}`noise_report_pgd`. The figure puts both on one axis, the size of the
# perturbation: random directions are almost orthogonal to the gradient in 3,072 dimensions, so
# noise needs norms an order of magnitude larger than an adversarial perturbation to do the same
# harm. Accuracy under noise measures a different thing (corruption robustness) from adversarial
# robustness, and the report's finding that adversarial training did not help against noise is
# consistent with that.

# %% tags=["remove-input"]
noise_curves = pd.concat([
    noise.reset_index().rename(columns={"median_l2": "l2", "mean_accuracy": "accuracy", "mean_low": "ci_low",
                                        "mean_high": "ci_high"}).assign(perturbation="Gaussian noise, one draw"),
    noise.reset_index().rename(columns={"median_l2": "l2", "worst_accuracy": "accuracy", "worst_low": "ci_low",
                                        "worst_high": "ci_high"})
    .assign(perturbation=f"Gaussian noise, worst of {cfg.noise_draws}")[["l2", "accuracy", "ci_low", "ci_high",
                                                                        "perturbation"]],
    pgd_l2.reset_index().rename(columns={"eps": "l2"}).assign(perturbation=f"PGD-L2, {cfg.pgd_steps} steps"),
], ignore_index=True)[["perturbation", "l2", "accuracy", "ci_low", "ci_high"]]
fig = plotting.accuracy_vs_eps(noise_curves, hue="perturbation", x="l2", logx=True,
                               xlabel="L2 norm of the perturbation (pixel units, log scale)",
                               title=f"{cfg.cifar_model} on CIFAR-10: noise against adversarial perturbations "
                                     f"(n = {len(ctest)})").figure

# %% [markdown]
# ## Transfer: zero queries
#
# An attacker who cannot query at all trains a surrogate and hopes. The surrogates here are the
# three {glue:text}`dataset` models and the small CNN trained again with the next seed (same
# architecture and recipe, other weights). Each panel crafts adversarial examples white-box on
# every model (rows, {glue:text}`mnist_threat`; PGD and MI-FGSM with
# {glue:text}`transfer_steps` iterations) and evaluates every model on them (columns). The
# diagonal is the white-box accuracy; off it, the target never saw a query.

# %% tags=["remove-input"]
glue("transfer_steps", str(cfg.transfer_steps), display=False)
transfers = plan.tables("transfer", device)
transfer = transfer_table(pd.concat([r.assign(attack=label) for label, r in transfers.items()], ignore_index=True))
fig = plotting.transfer_panels(transfer, panel="attack", title=f"transfer on {dataset_name}, {mnist_threat}")

# %% tags=["remove-input"]
transfer_means = transfer_summary(transfer)
glue("transfer_pgd", f"{transfer_means.transfer['PGD']:.1%}", display=False)
glue("transfer_mi", f"{transfer_means.transfer['MI-FGSM']:.1%}", display=False)
glue("transfer_fgsm", f"{transfer_means.transfer['FGSM']:.1%}", display=False)
mi_off = transfer[(transfer.attack == "MI-FGSM") & (transfer.source != transfer.target)]
mi_best = mi_off.loc[mi_off.accuracy.idxmin()]
glue("transfer_best", f"{mi_best.source} → {mi_best.target}, where the target keeps {mi_best.accuracy:.1%}",
     display=False)
display_table(transfer_means, {"white_box": ("white-box accuracy (diagonal mean)", "{:.1%}"),
                               "transfer": ("transferred accuracy (off-diagonal mean)", "{:.1%}"),
                               ("transfer_min", "transfer_max"): ("off-diagonal range", "[{:.1%}, {:.1%}]")})

# %% [markdown]
# Averaged over the source-target pairs off the diagonal, the targets keep
# {glue:text}`transfer_fgsm` under FGSM's examples, {glue:text}`transfer_pgd` under PGD's and
# {glue:text}`transfer_mi` under MI-FGSM's. Iterating on the surrogate fits its idiosyncrasies;
# momentum keeps the direction stable across steps, which is what transfers (Dong et al.). The
# pair that transfers best under MI-FGSM is {glue:text}`transfer_best`.
#
# ## HopSkipJump: labels only
#
# The hardest setting a real service imposes: the top label and nothing else. HopSkipJump
# minimises the L2 norm of the perturbation with {glue:text}`hsja_budgets` queries per example
# (one run per budget) on {glue:text}`hsja_n` CIFAR-10 images; the dashed lines are the
# white-box minimum-norm attacks on the same images, DeepFool-L2 ({glue:text}`deepfool_steps`
# steps) and Carlini-Wagner L2 ({glue:text}`cw_budget`). Medians are over the correctly
# classified images each attack fooled, with order-statistic 95% intervals.

# %% tags=["remove-input"]
hsja_set = plan.data("white-box norms", device)
glue("hsja_n", str(len(hsja_set)), display=False)
glue("hsja_budgets", ", ".join(f"{b:,}" for b in cfg.hsja_budgets), display=False)
glue("deepfool_steps", str(cfg.deepfool_steps), display=False)
glue("cw_budget", f"{cfg.cw_search_steps} binary-search steps × {cfg.cw_steps} Adam steps at learning rate "
                  f"{cfg.cw_lr:g}, c₀ = {cfg.cw_initial_const:g}", display=False)
hsja_rows = pd.concat(plan.tables("hsja", device), names=["budget"]).reset_index(level=0)
hsja = norm_summary(hsja_rows, by=("budget",))
white_norms = norm_summary(plan.result("white-box norms", device), by=("attack",))
fig = plotting.median_l2_vs_queries(hsja, yardsticks={f"{a} (white-box)": row.median_l2
                                                      for a, row in white_norms.iterrows()},
                                    title=f"HopSkipJump on {cfg.cifar_model}, label-only (n = {len(hsja_set)})")

# %% tags=["remove-input"]
norm_columns = {"n": ("n (correct)", "{:.0f}"), "success": ("fooled", "{:.1%}"),
                "median_l2": ("median L2", "{:.3f}"), ("median_l2_low", "median_l2_high"): ("95% CI",
                                                                                          "[{:.3f}, {:.3f}]"),
                "median_linf": ("median L∞", "{:.4f}")}
hsja_last = hsja.median_l2.iloc[-1]
glue("hsja_last", f"{hsja_last:.3f}", display=False)
glue("hsja_ratio", f"{hsja_last / white_norms.median_l2['CW-L2']:.1f}", display=False)
glue("hsja_max", f"{cfg.hsja_budgets[-1]:,}", display=False)
display_table(pd.concat({**{f"HopSkipJump, {b:,} queries": row for b, row in hsja.iterrows()},
                         **{f"{a} (white-box)": row for a, row in white_norms.iterrows()}}, axis=1).T,
              norm_columns)

# %% [markdown]
# With {glue:text}`hsja_max` label queries HopSkipJump's median perturbation is
# {glue:text}`hsja_last` in L2, {glue:text}`hsja_ratio` times Carlini-Wagner's white-box median:
# labels alone leak the decision boundary, and each additional query buys a closer point on it.

# %% [markdown]
# ## Obfuscated gradients: what a black-box attack sees that PGD does not
#
# The stability survey's warning (Athalye, Carlini & Wagner, 2018): a defense that breaks the
# gradient fools gradient attacks, not the attacker. Feature squeezing by bit-depth reduction
# (Xu et al., 2018) rounds every pixel to {glue:text}`squeeze_levels` levels before the VGG sees
# it. Rounding has zero gradient almost everywhere, so PGD ({glue:text}`pgd_steps` steps) gets no
# signal. Three ways around it, all in the {glue:text}`cifar_threat`: PGD through **BPDA**
# (the rounding differentiated as the identity on the backward pass only), and the score-based
# NATTACK and Square attacks with {glue:text}`queries` queries per example, which never asked for
# a gradient.

# %% tags=["remove-input"]
glue("squeeze_levels", f"2^{cfg.squeeze_bits} = {2 ** cfg.squeeze_bits}", display=False)
obfuscated = plan.tables("squeezed", device)
obfuscated_table = pd.concat({
    ("undefended", "clean"): accuracy(cifar_runs["Square"], "clean_correct"),
    ("undefended", "Square (black-box)"): accuracy(cifar_runs["Square"]),
    (f"{cfg.squeeze_bits}-bit squeezing", "clean"): accuracy(obfuscated["PGD"], "clean_correct"),
    **{(f"{cfg.squeeze_bits}-bit squeezing", label): accuracy(rows) for label, rows in obfuscated.items()},
}, names=["model", "attack"]).reset_index(level=[0, 1])
glue("squeezed_pgd", format_accuracy(accuracy(obfuscated["PGD"]).iloc[0]), display=False)
glue("squeezed_bpda", format_accuracy(accuracy(obfuscated["PGD + BPDA"]).iloc[0]), display=False)
glue("squeezed_square", format_accuracy(accuracy(obfuscated["Square"]).iloc[0]), display=False)
glue("squeezed_nattack", format_accuracy(accuracy(obfuscated["NATTACK"]).iloc[0]), display=False)
glue("squeezed_clean", format_accuracy(accuracy(obfuscated["PGD"], "clean_correct").iloc[0]), display=False)
accuracy_table(obfuscated_table, index=("model", "attack"))

# %% [markdown]
# Against plain PGD the squeezed VGG keeps {glue:text}`squeezed_pgd` of its
# {glue:text}`squeezed_clean` clean accuracy: a robustness claim a gradient-only evaluation would
# publish. PGD through BPDA leaves {glue:text}`squeezed_bpda`, NATTACK
# {glue:text}`squeezed_nattack` and Square {glue:text}`squeezed_square`. The robustness was
# never there; the gradient was. This is why the defenses chapters audit every defense with a
# black-box attack and with BPDA, using the same wrapper and the same attacks.
#
# ## What this chapter shows
#
# - Scores alone suffice: NES, Square and NATTACK reach the white-box accuracy on an undefended
#   model within a few thousand queries, Square the fastest.
# - A label alone suffices too (HopSkipJump), and so does no query at all, if the attacker's
#   surrogate is close enough (transfer, best with MI-FGSM).
# - Random noise is not a worst case: at equal L2 norm it does far less harm than an
#   adversarial perturbation.
# - A gradient attack's failure is evidence about the gradient, not about robustness: report a
#   black-box attack beside it.
