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
# gradients. This chapter states the threat model, derives five attacks from it, and measures
# them on the models of two reports: an MLP on MNIST (Rana, Bisht & Siddiqui) and a VGG on
# CIFAR-10 (Bentaleb, Abou Hadid & Benmaiza). Every number below is computed when the chapter
# runs; the parameters table says at which scale.
#
# ## Threat model
#
# For a clean input $x \in [0,1]^d$ with label $y$ the attacker may submit any
#
# $$
# x' \in S(x) = \{\, x' : \|x' - x\|_p \le \varepsilon,\ 0 \le x' \le 1 \,\}, \qquad p \in \{2, \infty\},
# $$
#
# with $\varepsilon$ in pixel units of $[0, 1]$ (the model normalises internally). The **robust
# accuracy** is the fraction of test points whose every $x' \in S(x)$ is classified correctly.
# An attack finds some of the bad $x'$, so the accuracy it leaves is an *upper bound* on the
# robust accuracy: the stronger the attack, the tighter the bound.
#
# ## Five attacks
#
# **FGSM** (Goodfellow et al., 2015) maximises the linearisation of the loss $L$ over the ball.
# The maximiser of $\nabla_x L^\top \delta$ over $\|\delta\|_\infty \le \varepsilon$ is
# $\varepsilon\,\mathrm{sign}(\nabla_x L)$, and over $\|\delta\|_2 \le \varepsilon$ it is
# $\varepsilon\,\nabla_x L / \|\nabla_x L\|_2$:
#
# $$
# x_{\text{FGSM}} = \Pi_{[0,1]^d}\bigl(x + \varepsilon\,\mathrm{sign}(\nabla_x L(f(x), y))\bigr).
# $$
#
# **PGD** (Madry et al., 2018) iterates that step with a smaller step size $\eta$ and projects
# back onto the threat model, from a random start in the ball:
#
# $$
# x^{t+1} = \Pi_{S(x)}\bigl(x^t + \eta\, d_p(\nabla_x L(f(x^t), y))\bigr),
# $$
#
# where $d_p$ is the steepest-ascent direction above. It is projected gradient ascent on a
# non-concave objective; restarts keep each example's worst case.
#
# **DeepFool** (Moosavi-Dezfooli et al., 2016) looks for the *smallest* perturbation instead. At
# $x_i$, with $w_k = \nabla f_k(x_i) - \nabla f_y(x_i)$ and $f'_k = f_k(x_i) - f_y(x_i)$, the
# linearised boundary with class $k$ is at distance $|f'_k| / \|w_k\|_q$ ($q$ the dual norm:
# $q=2$ for $p=2$, $q=1$ for $p=\infty$). DeepFool steps onto the nearest one,
#
# $$
# \hat l = \arg\min_{k \ne y} \frac{|f'_k|}{\|w_k\|_q}, \qquad
# r_i = \frac{|f'_{\hat l}|}{\|w_{\hat l}\|_q}\, d_p(w_{\hat l}),
# $$
#
# until the label changes, and returns $x + (1 + 0.02)\sum_i r_i$ (the 2% overshoot crosses the
# boundary rather than landing on it).
#
# **Carlini-Wagner L2** (2017) solves the penalised problem over $x' = \tfrac12(\tanh w + 1)$, which
# keeps $x'$ in the box:
#
# $$
# \min_w\ \|x' - x\|_2^2 + c \cdot \max\bigl(Z_y(x') - \max_{i \ne y} Z_i(x'),\, -\kappa\bigr),
# $$
#
# with Adam, and a binary search over $c$ per example: the smallest $c$ that still succeeds gives
# the smallest perturbation.
#
# **APGD** (Croce & Hein, 2020) is PGD with momentum and a step size that halves when progress
# stalls, run for a fixed budget of 100 iterations; with the cross-entropy (APGD-CE) or the
# scale-invariant difference-of-logits-ratio loss (APGD-DLR) it is the workhorse of strong
# evaluations in later chapters.

# %% tags=["remove-cell"]
import pandas as pd
from myst_nb import glue

import advlab
from advlab import ThreatModel, plotting
from advlab.chapters import chapter_config, white_box
from advlab.data import dataset_spec
from advlab.evaluate import (accuracy, accuracy_table, display_table, format_accuracy, norm_summary, rho_adv_summary,
                             transfer_table)

# %% tags=["parameters", "remove-cell"]
# None: the profile's value (see the table below)
profile = "quick"
seed = None
dataset = None
mnist_epochs = None
mnist_train_subset = None
n_test = None
eps = None
eps_grid = None
pgd_steps = None
deepfool_steps = None
fgsm_fool_rate = None
n_minimal = None
cw_steps = None
cw_search_steps = None
cw_lr = None
cw_initial_const = None
apgd_steps = None
cifar_model = None
cifar_width = None
cifar_epochs = None
cifar_train_subset = None
cifar_n_test = None
cifar_eps_linf = None
cifar_eps_l2 = None
cifar_linf_grid = None
cifar_l2_grid = None
batch_size = None
n_show = None

# %% [markdown]
# The parameters of this run, after validation. To re-run the chapter with other values:
# `advlab run white-box --profile quick -p eps 0.2` (see the introduction).

# %% tags=["remove-input"]
cfg = chapter_config("white-box", globals())
pd.set_option("display.max_colwidth", 200)
device = advlab.default_device()
threat = ThreatModel("linf", cfg.eps)
plan = white_box.plan(cfg)  # the evaluations below: from the result cache, or computed here
dataset_name = dataset_spec(cfg.dataset).title
glue("dataset", dataset_name, display=False)
cfg.table()

# %% [markdown]
# ## Three models on {glue:text}`dataset`
#
# The report's MLP (784-512-10, ReLU), a small CNN (two 3×3 convolutions with 32 and 64 channels,
# then 128 and 10 units) and LeNet-5, each trained with SGD and a one-cycle schedule through the
# checkpoint cache. Clean accuracy is measured on a seeded, class-stratified test subset, with
# exact (Clopper-Pearson) 95% intervals.

# %% tags=["remove-input"]
mnist_info = plan.model_table(cfg.dataset)
test = plan.data("clean", device)
clean_acc = accuracy(plan.result("clean", device), "correct", by="model").set_index("model")
mnist_info.assign(**{"clean accuracy": [format_accuracy(clean_acc.loc[n]) for n in mnist_info.index]})

# %% [markdown]
# ## The MNIST report: FGSM and DeepFool on the MLP
#
# The report trained the MLP on MNIST in Keras and attacked it with CleverHans: 97% clean
# accuracy, 29% under FGSM, 1.04% under DeepFool. Here the same architecture, trained on
# {glue:text}`dataset`, attacked by advlab's FGSM at the headline budget (threat model: L∞ ball
# of radius ε in pixel units, pixels in [0, 1]) and by DeepFool (L2, unbounded: it stops when the
# label changes). An example counts as robust only if it is classified correctly both clean and
# under the attack.

# %% tags=["remove-input"]
mlp_fgsm = plan.result("mlp_fgsm", device)
mlp_deepfool = plan.result("mlp_deepfool", device)
report_rows = {
    "clean": accuracy(mlp_fgsm, "clean_correct"),
    f"FGSM, L∞ ε = {cfg.eps:g}": accuracy(mlp_fgsm),
    f"DeepFool L2 (≤ {cfg.deepfool_steps} steps, unbounded)": accuracy(mlp_deepfool),
}
glue("mlp_clean", format_accuracy(report_rows["clean"].iloc[0]), display=False)
glue("mlp_fgsm", format_accuracy(accuracy(mlp_fgsm).iloc[0]), display=False)
glue("mlp_deepfool", format_accuracy(accuracy(mlp_deepfool).iloc[0]), display=False)
glue("mlp_deepfool_l2", f"{mlp_deepfool[mlp_deepfool.clean_correct].l2.median():.2f}", display=False)
glue("eps", f"{cfg.eps:g}", display=False)
accuracy_table(pd.concat(report_rows, names=["input"]).reset_index(level=0), index=("input",))

# %% [markdown]
# The MLP reaches {glue:text}`mlp_clean` clean accuracy on {glue:text}`dataset` (the report, on
# MNIST: 97%); FGSM with ε =
# {glue:text}`eps` leaves {glue:text}`mlp_fgsm` (the report does not state its ε; the curves
# below show the whole range), and DeepFool leaves {glue:text}`mlp_deepfool`: given enough
# iterations it fools every correctly classified input, with a median L2 perturbation of
# {glue:text}`mlp_deepfool_l2` (pixel units). What little accuracy DeepFool leaves is bounded by
# its iteration cap and the pixel box.
#
# ### DeepFool against FGSM: how small is the perturbation?
#
# The DeepFool paper's Table 1 compares the average relative size of the perturbation needed to
# fool a model, $\hat\rho_{\text{adv}} = \operatorname{mean}\, \|r\|_2 / \|x\|_2$, and the time per
# example. One rule holds for every perturbation size in this book: sizes are averaged over the
# examples that were classified correctly to begin with and that the attack fooled (a
# misclassified input needs no perturbation, and its zero would shrink the mean). FGSM has no
# notion of a minimal perturbation, so, as in the paper, its ε is set to the smallest value that
# fools {glue:text}`fgsm_rate` of those examples (found here by bisection). The paper reports 0.20
# (DeepFool) against 1.0 (FGSM) for LeNet on MNIST and 0.11 against 0.39 for a 500-150-10 MLP.
# Times are wall-clock on this run's device and vary from run to run.

# %% tags=["remove-input"]
rho = rho_adv_summary(plan.result("rho_adv", device))
rho_ratio = rho["rho_fgsm"] / rho["rho_deepfool"]
glue("rho_ratio", f"{rho_ratio.min():.1f}–{rho_ratio.max():.1f}", display=False)
glue("fgsm_rate", f"{cfg.fgsm_fool_rate:.0%}", display=False)
display_table(rho, {"n": ("n (correct)", None), "test_error": ("test error", "{:.1%}"),
                    "rho_deepfool": ("ρ_adv DeepFool", "{:.3f}"), "deepfool_success": ("DeepFool success", "{:.1%}"),
                    "deepfool_ms": ("DeepFool time", "{:.2f} ms"), "rho_fgsm": ("ρ_adv FGSM", "{:.3f}"),
                    "fgsm_eps": ("FGSM ε (L∞)", "{:.3f}"), "fgsm_fooled": ("FGSM fooled", "{:.1%}"),
                    "fgsm_ms": ("FGSM time", "{:.2f} ms")})

# %% [markdown]
# FGSM's perturbations are {glue:text}`rho_ratio` times larger than DeepFool's: a single
# sign step spends the whole budget in every pixel, while DeepFool moves only as far as the nearest
# (linearised) boundary. This is the sense in which DeepFool measures robustness and FGSM does not.
# Where FGSM cannot fool 90% of the examples with any ε ≤ 1, the table shows ε = 1 and how many it
# did fool: turning every pixel fully black or white along the gradient sign does not always change
# the label.
#
# ## Accuracy against the budget
#
# FGSM and PGD ({glue:text}`pgd_steps` steps, step size 2.5 ε / steps, one random start) against
# the L∞ budget, for the three models. Bands are 95% Clopper-Pearson intervals over the test
# subset; at ε = 0 the attacks cannot move and the curves start at clean accuracy.

# %% tags=["remove-input"]
glue("pgd_steps", str(cfg.pgd_steps), display=False)
curves = plan.result("curves", device)
curve_acc = accuracy(curves, by=["attack", "model", "norm", "eps"])
fig = plotting.accuracy_panels(curve_acc, panel="attack", hue="model",
                               title=f"{dataset_name}: accuracy under L∞ attacks (n = {len(test)})")

# %% tags=["remove-input"]
headline = curve_acc[curve_acc.eps == cfg.eps].set_index(["attack", "model"])
glue("pgd_cnn", format_accuracy(headline.loc[("pgd", "small_cnn")]), display=False)
glue("fgsm_cnn", format_accuracy(headline.loc[("fgsm", "small_cnn")]), display=False)
accuracy_table(curve_acc[curve_acc.eps == cfg.eps], index=("attack", "model", "eps"))

# %% [markdown]
# At ε = {glue:text}`eps` the small CNN keeps {glue:text}`fgsm_cnn` under FGSM but only
# {glue:text}`pgd_cnn` under PGD: the single linearised step overestimates robustness wherever the
# loss curves inside the ball. None of these models was trained to resist attacks; the defenses
# chapter trains ones that are.
#
# ## Minimal perturbations, L2 against L∞
#
# The minimum-norm attacks give a per-example robustness radius instead of an accuracy at one
# budget. DeepFool in L2 and L∞ and Carlini-Wagner L2 ({glue:text}`cw_budget`) on the same
# examples; norms are medians over the correctly classified examples each attack fooled. CW's
# tanh box is slow to move pixels that sit at exactly 0 or 1 (most of an MNIST digit): there
# $w = \operatorname{artanh}(\pm 0.999999) \approx \pm 7$ and the derivative of the box is about
# $10^{-6}$, so with a short budget a larger learning rate than the paper's $10^{-2}$ (which it pairs
# with 10,000 steps) is what lets CW succeed.

# %% tags=["remove-input"]
glue("cw_budget", f"{cfg.cw_search_steps} binary-search steps × {cfg.cw_steps} Adam steps at learning rate "
                  f"{cfg.cw_lr:g}, c₀ = {cfg.cw_initial_const:g}", display=False)
norm_rows = plan.result("minimal_norms", device)
display_table(norm_summary(norm_rows), {
    "n": ("n", None), "success": ("success", "{:.1%}"), ("ci_low", "ci_high"): ("95% CI", "[{:.1%}, {:.1%}]"),
    "median_l2": ("median L2", "{:.3f}"), "median_linf": ("median L∞", "{:.3f}"),
    ("l2_q25", "l2_q75"): ("L2 IQR", "[{:.3f}, {:.3f}]")})

# %% [markdown]
# The two norms see different attacks. In $d$ dimensions
# $\|\delta\|_\infty \le \|\delta\|_2 \le \sqrt{d}\,\|\delta\|_\infty$: an L∞-minimal perturbation
# spreads over all pixels (its L2 norm is large), an L2-minimal one concentrates on the
# few pixels that matter (its L∞ norm is large). Each point below is one test image: its smallest
# L2 perturbation against its smallest L∞ perturbation found by DeepFool.

# %% tags=["remove-input"]
fig = plotting.norm_scatter(norm_rows, x_attack="DeepFool-L2", y_attack="DeepFool-L∞",
                            title="minimal perturbation per example (DeepFool)")

# %% [markdown]
# ## Transferability
#
# Adversarial inputs crafted on one model often fool another (Szegedy et al., 2014). Rows: the
# model PGD attacked (L∞, ε = {glue:text}`eps`); columns: the model evaluated on the result. The
# diagonal is the white-box accuracy; off the diagonal, a black-box attacker who trained their own
# surrogate.

# %% tags=["remove-input"]
transfer = transfer_table(plan.result("transfer", device))
fig = plotting.transfer_heatmap(transfer, title=f"PGD transfer, {threat}")

# %% [markdown]
# ## What the attacks do to the images
#
# Top row: clean test images with label and prediction; middle: the perturbation, rescaled to
# the full grey range; bottom: the adversarial input and the prediction (red when wrong). FGSM and
# PGD spend the L∞ budget everywhere; DeepFool and CW change fewer pixels by less.

# %% tags=["remove-input"]
grid_set = plan.data("grid fgsm", device)
fig = plotting.attack_grid(plan.result("grid fgsm", device), grid_set, n=cfg.n_show)

# %% tags=["remove-input"]
fig = plotting.attack_grid(plan.result("grid pgd", device), grid_set, n=cfg.n_show)

# %% tags=["remove-input"]
fig = plotting.attack_grid(plan.result("grid deepfool", device), grid_set, n=cfg.n_show)

# %% tags=["remove-input"]
fig = plotting.attack_grid(plan.result("grid cw", device), grid_set, n=cfg.n_show)

# %% [markdown]
# ## The CIFAR-10 report: VGG under FGSM and PGD
#
# The report trained a full VGG-19 on CIFAR-10 (82.1% clean accuracy) and measured 8.1% under
# FGSM, 6.6% under PGD-L2 and 2.6% under PGD-L∞ (PGD with step ε/10 and 10 iterations; the
# report does not state the ε of that table). This run trains {glue:text}`vgg_name` (every layer's
# width scaled by the multiplier in the parameters table, so that the quick profile fits on a
# laptop CPU; the paper profile uses the full width) and attacks it at L∞ ε =
# {glue:text}`cifar_eps_linf` and L2 ε = {glue:text}`cifar_eps_l2` (the field's common CIFAR-10
# budgets are 8/255 ≈ 0.0314 and 0.5), with APGD-CE as the strongest check.

# %% tags=["remove-input"]
glue("vgg_name", f"{cfg.cifar_model.upper()} at width {cfg.cifar_width:g}", display=False)
glue("cifar_eps_linf", f"{cfg.cifar_eps_linf:.4g}", display=False)
glue("cifar_eps_l2", f"{cfg.cifar_eps_l2:.4g}", display=False)
ctest = plan.data("cifar_fgsm", device)
cifar_runs = {label: plan.result(name, device) for label, name in [
    ("FGSM L∞", "cifar_fgsm"), ("PGD L∞", "cifar_pgd_linf"), ("PGD L2", "cifar_pgd_l2"), ("APGD-CE L∞", "cifar_apgd")]}
cifar_table = pd.concat(
    {"clean": accuracy(cifar_runs["FGSM L∞"], "clean_correct"),
     **{f"{k}, ε = {r.eps.iloc[0]:.4g}": accuracy(r) for k, r in cifar_runs.items()}},
    names=["input"]).reset_index(level=0)
glue("vgg_clean", format_accuracy(cifar_table.iloc[0]), display=False)
glue("vgg_pgd", format_accuracy(accuracy(cifar_runs["PGD L∞"]).iloc[0]), display=False)
accuracy_table(cifar_table, index=("input",))

# %% [markdown]
# The VGG classifies {glue:text}`vgg_clean` of the CIFAR-10 test subset correctly and PGD-L∞ at
# ε = {glue:text}`cifar_eps_linf` leaves {glue:text}`vgg_pgd`. As in the report, an undefended
# network loses nearly all its accuracy at budgets a human would not notice. Below, the whole
# curves: L2 attacks on the left, L∞ attacks on the right.

# %% tags=["remove-input"]
cifar_curves = pd.concat([plan.result("cifar_curves_linf", device), plan.result("cifar_curves_l2", device)],
                         ignore_index=True)
fig = plotting.accuracy_panels(accuracy(cifar_curves, by=["norm", "attack", "eps"]), panel="norm", hue="attack",
                               title=f"{cfg.cifar_model} on CIFAR-10 (n = {len(ctest)})")

# %% tags=["remove-input"]
fig = plotting.attack_grid(plan.result("cifar grid pgd", device), plan.data("cifar grid pgd", device),
                          n=cfg.n_show)
