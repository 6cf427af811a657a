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
# # Defenses: adversarial training, randomness, denoisers
#
# The white-box and black-box chapters broke every model they attacked. This chapter asks the
# reports' question: **which training makes a model robust, and at what price** in clean accuracy
# and compute? It trains the defenses of the four reports and of the field's references, and
# judges every one of them by the same strong evaluation. Its second half turns to defenses that
# add randomness or clean the inputs, attacks them adaptively, and audits every model of the
# chapter for the symptoms of masked gradients.
#
# ## Adversarial training
#
# Madry et al. (2018) write robust training as a saddle-point problem,
#
# $$
# \min_\theta \; \mathbb E_{(x, y)} \Bigl[ \max_{x' \in S(x)} L\bigl(f_\theta(x'), y\bigr) \Bigr],
# \qquad S(x) = \{x' : \|x' - x\|_p \le \varepsilon,\ 0 \le x' \le 1\},
# $$
#
# and solve the inner maximisation approximately with an attack on every training batch. The
# variants differ in that attack and in the loss:
#
# - **PGD training** (Madry et al. 2018): $k$ steps of PGD with a random start. It costs $k$
#   extra forward and backward passes per example.
# - **FGSM training** (Goodfellow et al. 2015): one step of length ε from the clean point.
# - **FGSM-RS**, "fast" adversarial training (Wong, Rice & Kolter 2020): a uniform random start in
#   the ball, then one step of $1.25\,\varepsilon$ and a projection, with a cyclic learning rate.
#   Without the random start, FGSM training can **overfit catastrophically**: within an epoch the
#   model learns to defeat the single step while PGD accuracy collapses to zero.
# - **TRADES** (Zhang et al. 2019) separates accuracy from robustness:
#   $L(f(x), y) + \beta\, \mathrm{KL}\bigl(f(x) \,\|\, f(x')\bigr)$, with $x'$ the PGD maximiser of
#   the KL term.
# - **Mixed L2 + L∞** training (Tramèr & Boneh 2019; the small-CNN report's "to do") defends the
#   union of two balls: per example the worse of a PGD-L∞ and a PGD-L2 example (*max*), or
#   batches alternating between the two (*alternate*).
# - **DeepFool fine-tuning** (the MNIST report, after Moosavi-Dezfooli et al. 2016): a trained
#   model trained a few more epochs on DeepFool's minimal perturbations of its training set.
#
# The VGG-19 report trains on **half-perturbed** batches (half adversarial, half clean); Madry et
# al. on fully perturbed ones. Every attack that crafts training examples here runs with the
# model in eval mode and differentiates only with respect to the inputs.
#
# ## Judging a defense
#
# A defense evaluated with the attack it was trained against proves little. Every robust
# accuracy in this chapter is the **per-example worst case over an adaptive evaluation**, run as a
# cascade as AutoAttack does (Croce & Hein 2020): APGD on the cross-entropy, then APGD-T (the
# targeted DLR loss towards the highest other classes) on the examples that survived, then the
# gradient-free **Square** attack on those that survived both. Each model is probed first, and where
# its gradients mislead (zero, cut, partial or inconsistent, or Square breaking what the gradient
# attacks could not) the evaluation escalates on the survivors: BPDA where a submodule cuts the
# gradient, transfer from an attacker's surrogate, and Square with a larger budget.
# An example counts as robust only if the model classifies it correctly clean *and* under every
# attack. Intervals are exact 95% Clopper-Pearson intervals over the evaluated test subset.

# %% tags=["remove-cell"]
import warnings

import pandas as pd
from myst_nb import glue

import advlab
from advlab import ThreatModel, plotting
from advlab.chapters import chapter_config, defenses
from advlab.data import dataset_spec
from advlab.evaluate import accuracy, display_table, interval_cells, robustness_summary

# The catastrophic-overfitting table below reports what these warnings say.
warnings.filterwarnings("ignore", message="catastrophic overfitting")

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
mnist_model = None
mnist_adv_epochs = None
mnist_adv_subset = None
mnist_adv_lr = None
mnist_eps = None
mnist_eps_l2 = None
train_steps = None
trades_beta = None
monitor = None
co_eps = None
co_epochs = None
cifar_adv_epochs = None
cifar_adv_subset = None
cifar_train_steps = None
cifar_eps = None
cifar_eps_l2 = None
adv_fraction = None
vgg_depths = None
widths = None
finetune_epochs = None
finetune_subset = None
finetune_scales = None
finetune_fgsm_eps = None
noise_sigmas = None
table2_sigma = None
eot_draws = None
vote_draws = None
attack_noise_sigma = None
noise_attack_draws = None
denoiser_depth = None
denoiser_width = None
denoiser_epochs = None
denoiser_subset = None
denoiser_eps = None
audit_n = None
audit_steps = None
squeeze_bits = None
n_minimal = None
n_test = None
cifar_n_test = None
apgd_steps = None
apgd_targets = None
square_queries = None
escalation_queries = None
eps_grid = None
l2_grid = None
batch_size = None

# %% [markdown]
# The parameters of this run, after validation. To re-run the chapter with other values:
# `advlab run defenses --profile quick -p mnist_eps 0.2` (see the introduction).

# %% tags=["remove-input"]
cfg = chapter_config("defenses", globals())
pd.set_option("display.max_colwidth", 200)
device = advlab.default_device()
mnist_linf, mnist_l2 = ThreatModel("linf", cfg.mnist_eps), ThreatModel("l2", cfg.mnist_eps_l2)
cifar_linf, cifar_l2 = ThreatModel("linf", cfg.cifar_eps), ThreatModel("l2", cfg.cifar_eps_l2)
ensemble_text = defenses.cascade_text(cfg)
plan = defenses.plan(cfg)  # the ensemble evaluations below: from the result cache, or computed here
dataset_name = dataset_spec(cfg.dataset).title
glue("ensemble", ensemble_text, display=False)
glue("dataset", dataset_name, display=False)
glue("mnist_linf", str(mnist_linf), display=False)
glue("mnist_l2", str(mnist_l2), display=False)
glue("cifar_linf", str(cifar_linf), display=False)
glue("cifar_l2", str(cifar_l2), display=False)
cfg.table()

# %% [markdown]
# ## Madry's setting: {glue:text}`dataset` in the L∞ ball of radius 0.3
#
# Madry et al. trained a CNN on MNIST with PGD (40 steps) against $\|\delta\|_\infty \le 0.3$; their
# public model keeps **98.5%** clean accuracy and **88.5%** under AutoAttack. Wong et al. reach
# **88.8%** under PGD-50 with 10 restarts with FGSM-RS at a fraction of the cost. Here the
# {glue:text}`mnist_model` is trained with each method on {glue:text}`mnist_scale`, PGD and TRADES
# with {glue:text}`train_steps`-step attacks, and every model is evaluated on
# {glue:text}`n_test` class-stratified test digits in the {glue:text}`mnist_linf` by the ensemble
# ({glue:text}`ensemble`). The *standard* model is the white-box chapter's.

# %% tags=["remove-input"]
trained = plan.records("MNIST")
mnist_rows = plan.result("mnist_robust", device)
mnist_acc = robustness_summary(mnist_rows, by=["norm", "model"])
linf_acc, l2_acc, union_acc = (mnist_acc.loc[n] for n in ("linf", "l2", "union"))
mnist_cost = defenses.training_cost(trained)
madry = ["standard", "FGSM", "FGSM-RS", "PGD-L∞", "TRADES"]
linf_label = f"robust, L∞ ε = {cfg.mnist_eps:g} (%)"
madry_table = pd.DataFrame({
    "clean (%)": interval_cells(linf_acc, "clean"), linf_label: interval_cells(linf_acc, "robust"),
    "training time": mnist_cost["seconds"].map("{:.0f} s".format),
}).loc[madry].rename_axis("training")
glue("mnist_scale", f"{mnist_cost.loc['PGD-L∞', 'examples']:,} training digits for {cfg.mnist_adv_epochs} epochs",
     display=False)
glue("mnist_model", cfg.mnist_model, display=False)
glue("train_steps", str(cfg.train_steps), display=False)
glue("n_test", str(cfg.n_test), display=False)
glue("mnist_pgd_robust", interval_cells(linf_acc, "robust")["PGD-L∞"] + "%", display=False)
glue("mnist_fgsmrs_robust", interval_cells(linf_acc, "robust")["FGSM-RS"] + "%", display=False)
glue("mnist_standard_robust", interval_cells(linf_acc, "robust")["standard"] + "%", display=False)
madry_gap = defenses.madry_gap(linf_acc)
glue("madry_gap", f"{abs(madry_gap):.1f} points {'below' if madry_gap > 0 else 'above'}", display=False)
glue("this_scale", f"{cfg.mnist_adv_epochs} epochs over {mnist_cost.loc['PGD-L∞', 'examples']:,} digits with "
     f"PGD-{cfg.train_steps}", display=False)
madry_table

# %% [markdown]
# The standard model keeps {glue:text}`mnist_standard_robust` of the digits in the ball; PGD
# training keeps {glue:text}`mnist_pgd_robust` and FGSM-RS {glue:text}`mnist_fgsmrs_robust`.
# PGD training here ends {glue:text}`madry_gap` Madry's public model (88.5% under AutoAttack),
# under an ensemble of the same kind with a smaller budget. Madry et al. trained a larger CNN for
# 100,000 iterations of batches of 50 with PGD-40; this run trains {glue:text}`mnist_model` for
# {glue:text}`this_scale`.
#
# ## Catastrophic overfitting
#
# Each adversarial run above held {glue:text}`monitor` training digits out of training and
# measured their FGSM and PGD-10 accuracy after every epoch. The checkpoint keeps the epoch of best
# PGD-10 accuracy, and an epoch is flagged as **catastrophic overfitting** when PGD-10 accuracy
# falls more than {glue:text}`co_drop` points below its best so far, or stays under
# {glue:text}`co_floor` while FGSM accuracy is more than {glue:text}`co_gap` points higher: the
# model has learnt to defeat the single step, not the ball. FGSM
# training from the clean point at ε = {glue:text}`co_eps` is the run built to overfit; FGSM-RS
# and PGD at the same budget are its controls.

# %% tags=["remove-input"]
co_records = plan.records("overfitting")
co = {name: info["metrics"] for name, info in co_records.items()}
co_table = defenses.overfitting_table(co_records)
glue("monitor", f"{cfg.monitor:,}", display=False)
glue("co_eps", f"{cfg.co_eps:g}", display=False)
glue("co_drop", f"{100 * defenses.OVERFITTING_RULE['drop']:.0f}", display=False)
glue("co_floor", f"{defenses.OVERFITTING_RULE['floor']:.0%}", display=False)
glue("co_gap", f"{100 * defenses.OVERFITTING_RULE['gap']:.0f}", display=False)
fig = plotting.monitor_curves({k: (m["history"], m["best_epoch"]) for k, m in co.items()},
                              title=f"Held-out accuracy during training, L∞ ε = {cfg.co_eps:g}")
co_table

# %% [markdown]
# ## Mixed L2 + L∞ training: one model for two threat models
#
# A model trained in one ball need not resist another. The same models, with a PGD-L2-trained
# one and the two mixed strategies, evaluated by the ensemble in the {glue:text}`mnist_linf`, in
# the {glue:text}`mnist_l2`, and in their **union** (robust only if robust in both balls).

# %% tags=["remove-input"]
mixed = ["standard", "PGD-L∞", "PGD-L2", "mixed (max)", "mixed (alternate)"]
mixed_table = pd.DataFrame({
    "clean (%)": interval_cells(linf_acc, "clean"), linf_label: interval_cells(linf_acc, "robust"),
    f"robust, L2 ε = {cfg.mnist_eps_l2:g} (%)": interval_cells(l2_acc, "robust"),
    "robust, union (%)": interval_cells(union_acc, "robust"),
    "relative training cost": mnist_cost["relative cost"].round(1),
}).loc[mixed].rename_axis("training")
best_union = union_acc.loc[mixed, "robust"].idxmax()
glue("best_union", best_union, display=False)
glue("best_union_acc", interval_cells(union_acc, "robust")[best_union] + "%", display=False)
mixed_table

# %% [markdown]
# The highest union accuracy belongs to {glue:text}`best_union` ({glue:text}`best_union_acc`).
# The *max* strategy runs both attacks on every batch; *alternate* costs the same as PGD training
# but sees each ball on half the batches.
#
# ## The VGG-19 report's Table 1 and Figure 4, on CIFAR-10
#
# The report trains its VGG-19 on half-perturbed batches with FGSM, PGD-L2 and PGD-L∞ and
# attacks each model with FGSM and with PGD of step ε/10 for 10 iterations. Here the same four
# models ({glue:text}`vgg_name`; adversarial training on {glue:text}`cifar_scale`, the
# training PGD of step ε/10 with {glue:text}`cifar_train_steps` steps) are attacked with the
# report's attacks in the {glue:text}`cifar_linf` and the {glue:text}`cifar_l2` (the report states
# one ε for both norms; an L2 radius of 0.06 would barely move an image, so the L2 attacks use
# 0.5), and with the ensemble in the L∞ ball, on {glue:text}`cifar_n_test` test images.

# %% tags=["remove-input"]
ctrained = plan.records("CIFAR-10")
report_rows = defenses.report_rows(plan.tables("report", device))
cifar_rows = plan.result("cifar_robust", device)
report_acc = robustness_summary(defenses.at_budget(report_rows, cfg), by=["label", "model"])
cifar_acc = robustness_summary(cifar_rows)
table_1 = defenses.report_table(cfg, cifar_acc, report_acc).loc[list(ctrained)]
cifar_cost = defenses.training_cost(ctrained)
glue("vgg_name", f"{cfg.cifar_model.upper()} at width {cfg.cifar_width:g}", display=False)
glue("cifar_scale", f"{cifar_cost.loc['PGD-L∞ trained', 'examples']:,} images for {cfg.cifar_adv_epochs} epochs",
     display=False)
glue("cifar_train_steps", str(cfg.cifar_train_steps), display=False)
glue("cifar_n_test", str(cfg.cifar_n_test), display=False)
glue("vgg_pgd_report_attack", interval_cells(report_acc.loc["PGD-L∞"], "robust")["PGD-L∞ trained"] + "%",
     display=False)
glue("vgg_pgd_ensemble", interval_cells(cifar_acc, "robust")["PGD-L∞ trained"] + "%", display=False)
glue("vgg_pgd_clean", interval_cells(cifar_acc, "clean")["PGD-L∞ trained"] + "%", display=False)
glue("vgg_base_clean", interval_cells(cifar_acc, "clean")["base"] + "%", display=False)
display_table(defenses.REPORT_TABLE_1, {c: (f"report: {c} (%)", "{:.1f}") for c in defenses.REPORT_TABLE_1})
table_1

# %% [markdown]
# The report's PGD-L∞-trained VGG kept 49.5% under its PGD-L∞ attack at 65.1% clean accuracy.
# Ours keeps {glue:text}`vgg_pgd_report_attack` under the report's attack and
# {glue:text}`vgg_pgd_ensemble` under the ensemble, at {glue:text}`vgg_pgd_clean` clean (the base
# VGG: {glue:text}`vgg_base_clean`). The gap between the report's attack and the ensemble is what
# a weak evaluation hides: PGD with step ε/10 for 10 steps travels at most ε in total and cannot
# explore the ball. The report's Figure 4, accuracy against ε for each attack and model:

# %% tags=["remove-input"]
fig4 = accuracy(report_rows, by=["model", "label", "norm", "eps"])
fig = plotting.accuracy_panels(fig4, panel="label", hue="model",
                               title=f"{cfg.cifar_model.upper()} (width {cfg.cifar_width:g}) on CIFAR-10: "
                                     "the report's attacks, PGD with step ε/10 for 10 iterations; ε in pixels")

# %% [markdown]
# ### The report's ε, read both ways
#
# The report never says in which units its ε = 0.06 is. Read in pixels of [0, 1], its
# PGD-L∞-trained VGG would keep more accuracy than any published CIFAR-10 model keeps at 8/255 ≈
# 0.031, half that budget. Read in the units of the network's input normalisation, (x − mean) / std,
# the same ε moves channel c of a pixel by ε·std_c, about {glue:text}`eps_std_pixels` in pixels.
# Both readings are run here: every attack of Table 1 and Figure 4 again, with ε in normalised
# units (a per-channel threat model: the L∞ ball is a box of half-width ε·std_c, the L2 ball an
# ellipsoid).

# %% tags=["remove-input"]
report_std = defenses.report_rows(plan.tables("report ×std", device))
report_acc_std = robustness_summary(defenses.at_budget(report_std, cfg), by=["label", "model"])
cifar_std = dataset_spec("cifar10").std
glue("eps_std_pixels", f"{cfg.cifar_eps * min(cifar_std):.4f} to {cfg.cifar_eps * max(cifar_std):.4f}", display=False)
defenses.report_table(cfg, cifar_acc, report_acc_std, " × std").loc[list(ctrained)]

# %% [markdown]
# What each L∞ attack leaves of each model's clean accuracy (robust ÷ clean, %), in the report and
# in this run at each reading. A model smaller or less trained than the report's has less clean
# accuracy to lose; the share an attack takes is the signature of its ε. The L2 attacks are left
# out of this comparison: their radius, 0.5, is this chapter's choice, not the report's.

# %% tags=["remove-input"]
evidence = defenses.reading_evidence(cifar_acc["clean"], report_acc, report_acc_std)
reading = defenses.favoured_reading(evidence)
glue("reading_favoured", reading["favoured"], display=False)
glue("reading_gap_pixel", f"{reading['gaps']['pixel']:.1f}", display=False)
glue("reading_gap_normalised", f"{reading['gaps']['normalised']:.1f}", display=False)
glue("reading_margin", f"{reading['margin']:.1f}", display=False)
evidence.round(1)

# %% [markdown]
# On these models the {glue:text}`reading_favoured` reading is closer to the report: the retention
# differs from the report's by {glue:text}`reading_gap_pixel` points on average with ε in pixels
# and by {glue:text}`reading_gap_normalised` points with ε in normalised units, a margin of
# {glue:text}`reading_margin` points. Figure 4 at the normalised reading:

# %% tags=["remove-input"]
fig = plotting.accuracy_panels(accuracy(report_std, by=["model", "label", "norm", "eps"]), panel="label", hue="model",
                               title=f"{cfg.cifar_model.upper()} (width {cfg.cifar_width:g}) on CIFAR-10: "
                                     "the report's attacks; ε in normalised units (× per-channel std)")

# %% [markdown]
# ## Depth and width under adversarial training
#
# The report compared VGG-11, 13, 16 and 19 trained with the same adversarial recipe and found
# VGG-13 the most robust; the small-CNN report planned wide against narrow networks (Madry et al.
# found capacity essential for robustness). Every VGG below is PGD-L∞-trained with Table 1's
# recipe and evaluated by the ensemble in the {glue:text}`cifar_linf`.

# %% tags=["remove-input"]
cap_trained = plan.records("capacity")
cap_rows = plan.result("capacity_robust", device)
cap_acc = robustness_summary(cap_rows)
cap_table = pd.DataFrame({
    "parameters": plan.model_table("capacity")["parameters"],
    "clean (%)": interval_cells(cap_acc, "clean"),
    f"robust, ensemble L∞ {cfg.cifar_eps:g} (%)": interval_cells(cap_acc, "robust"),
}).loc[list(cap_trained)].rename_axis("VGG × width")
glue("most_robust_vgg", cap_acc["robust"].idxmax(), display=False)
cap_table

# %% [markdown]
# Here the most robust is {glue:text}`most_robust_vgg`; rows whose intervals overlap are not
# told apart by this test set.
#
# ## DeepFool against FGSM fine-tuning
#
# The MNIST report (after the DeepFool paper) fine-tunes a trained network for a few more epochs
# at half its learning rate on perturbed training examples only, and compares the robustness
# $\rho_\text{adv} = \mathbb E\,\|r(x)\|_2 / \|x\|_2$ measured by DeepFool before and after:
# DeepFool examples raise it more than FGSM examples, and **over-sized perturbations hurt** (the
# DeepFool paper scales its perturbations by α = 1, 2, 3). Here the white-box chapter's MLP is
# fine-tuned {glue:text}`finetune_epochs` epochs on {glue:text}`finetune_scale` with DeepFool
# perturbations scaled by α, and with FGSM at L∞ ε = {glue:text}`finetune_fgsm_eps`; ρ_adv is
# measured on {glue:text}`n_minimal` test digits.

# %% tags=["remove-input"]
ft_trained = plan.records("fine-tuning")
rho = defenses.finetune_rho(plan.result("finetune rho_adv", device))
ft_cost = defenses.training_cost(ft_trained)
glue("finetune_epochs", str(cfg.finetune_epochs), display=False)
glue("finetune_scale", f"{ft_cost.loc['FGSM', 'examples']:,} training digits", display=False)
glue("finetune_fgsm_eps", f"{cfg.finetune_fgsm_eps:g}", display=False)
glue("n_minimal", str(cfg.n_minimal), display=False)
glue("best_finetune", rho["rho_deepfool"].drop("base").idxmax(), display=False)
display_table(rho[["test_error", "rho_deepfool", "rho_change", "deepfool_success", "rho_fgsm"]],
              {"test_error": ("test error", "{:.1%}"), "rho_deepfool": ("ρ_adv DeepFool", "{:.3f}"),
               "rho_change": ("change of ρ_adv", "{:+.0%}"), "deepfool_success": ("DeepFool success", "{:.1%}"),
               "rho_fgsm": ("ρ_adv FGSM", "{:.3f}")})

# %% [markdown]
# The largest ρ_adv after fine-tuning belongs to {glue:text}`best_finetune`. The FGSM column
# measures each model with the FGSM budget that fools 90% of its correct digits, as in the
# white-box chapter.

# %% [markdown]
# ## Randomized networks
#
# The VGG-19 report's randomized network adds Gaussian noise $\sigma\,\mathcal N(0, I)$ to the
# inputs during training, and again at test time. Its Table 2, at σ = 0.06: **56.7%** clean,
# **55.3%** on noisy inputs, **21.1%** under FGSM, **33.2%** under PGD-L2 and **35.7%** under
# PGD-L∞; the small-CNN report saw PGD-L∞ accuracy rise from 21.4% to 29.3% with noise. Here
# VGGs are trained with noise σ ∈ {glue:text}`noise_sigmas` on Table 1's data and epochs (σ = 0 is
# standard training at that scale). A randomized model answers each query with a new draw, so a
# plain attack follows one draw's gradient; an honest evaluation attacks the **expected**
# prediction with EOT ({glue:text}`eot_draws` draws per gradient, batched) and scores the
# prediction averaged the same way.

# %% tags=["remove-input"]
noise_trained = plan.records("noise")
ax = plotting.training_curves({s: info["metrics"]["history"] for s, info in noise_trained.items()},
                              legend="training noise σ", title="Training loss of the noise-trained VGGs")
noise_acc = defenses.noise_accuracy(plan.result("noise vote", device), cfg.vote_draws)
ax = plotting.accuracy_vs_eps(noise_acc, hue="prediction", x="sigma",
                              xlabel="noise σ in training and at test time (pixel units)",
                              title="Clean and noisy test accuracy of the randomized VGGs")
glue("noise_sigmas", ", ".join(f"{s:g}" for s in cfg.noise_sigmas), display=False)
glue("eot_draws", str(cfg.eot_draws), display=False)

# %% [markdown]
# The report's Table 2 for the model trained at σ = {glue:text}`table2_sigma`, attacked with its
# attacks (FGSM, PGD of step ε/10 for 10 iterations; {glue:text}`cifar_linf` and
# {glue:text}`cifar_l2`), once with plain attacks on single draws and once with EOT, beside the
# same recipe trained without noise:

# %% tags=["remove-input"]
t2_models = defenses.table2_models(cfg)
t2_rows = defenses.report_rows(plan.tables("table2", device))
t2_acc = robustness_summary(t2_rows, by=["label", "model"])
table_2 = pd.DataFrame({
    "clean (%)": interval_cells(t2_acc.loc["FGSM"], "clean"),
    f"FGSM, L∞ {cfg.cifar_eps:g} (%)": interval_cells(t2_acc.loc["FGSM"], "robust"),
    f"PGD-L2 {cfg.cifar_eps_l2:g} (%)": interval_cells(t2_acc.loc["PGD-L2"], "robust"),
    f"PGD-L∞ {cfg.cifar_eps:g} (%)": interval_cells(t2_acc.loc["PGD-L∞"], "robust"),
}).loc[list(t2_models)].rename_axis(f"randomized network, σ = {cfg.table2_sigma:g}")
eot_gap = defenses.eot_gap(t2_acc, cfg)
glue("table2_sigma", f"{cfg.table2_sigma:g}", display=False)
glue("eot_gap", f"{abs(eot_gap):.1f} points {'above' if eot_gap >= 0 else 'below'}", display=False)
display_table(defenses.REPORT_TABLE_2, {c: (f"report: {c} (%)", "{:.1f}") for c in defenses.REPORT_TABLE_2})
table_2

# %% [markdown]
# Under PGD-L∞, the plain attack leaves accuracy {glue:text}`eot_gap` what EOT leaves; a plain
# attack's excess is robustness the noise only appears to give. The noise-free row is the
# comparison the small-CNN report made (its PGD-L∞ accuracy: 21.4% without noise, 29.3% with).
#
# ## Gaussian noise as an attack on every model
#
# The VGG-19 report's noise attack at σ = 0.1 left **42.6%** accuracy on its vanilla model and
# **39.2%** on its adversarially trained one. Here every model of the chapter receives
# $x + \sigma\,\mathcal N(0, I)$, clipped to the box, at σ = {glue:text}`attack_noise_sigma`:
# the mean accuracy over {glue:text}`noise_attack_draws` single draws (t-interval over examples),
# and the worst of the draws (an attack with that many queries).

# %% tags=["remove-input"]
noise_rows = pd.concat([plan.result("noise attack mnist", device), plan.result("noise attack cifar", device)])
noise_attack = defenses.noise_attack_table(noise_rows)
glue("attack_noise_sigma", f"{cfg.attack_noise_sigma:g}", display=False)
glue("noise_attack_draws", str(cfg.noise_attack_draws), display=False)
display_table(noise_attack[["mean_accuracy", "mean_low", "mean_high", "worst_accuracy", "worst_low", "worst_high"]],
              {"mean_accuracy": ("mean over draws", "{:.1%}"), "mean_low": ("95% low", "{:.1%}"),
               "mean_high": ("95% high", "{:.1%}"), "worst_accuracy": ("worst of the draws", "{:.1%}"),
               "worst_low": ("worst: 95% low", "{:.1%}"), "worst_high": ("worst: 95% high", "{:.1%}")})

# %% [markdown]
# ## A denoiser in front of the classifier
#
# The small-CNN report trains a DnCNN (Zhang et al. 2017) to map FGSM examples (ε = 0.05) of its
# classifier back to the clean images and puts it in front of the classifier: accuracy under that
# FGSM rose from **10.0%** to **17.3%**. Here a DnCNN with {glue:text}`denoiser_arch` learns to
# clean FGSM examples ({glue:text}`denoiser_threat`) of the base VGG, from
# {glue:text}`denoiser_scale`. Two evaluations on the test images: (a) the report's, FGSM
# examples crafted on the classifier alone, then denoised; (b) the **adaptive** attack, which
# differentiates through denoiser and classifier together.

# %% tags=["remove-input"]
dn_info, = plan.records("denoiser").values()
d_threat = ThreatModel("linf", cfg.denoiser_eps)
dn_runs = defenses.denoiser_runs(plan, cfg, device)
dn_acc = robustness_summary(pd.concat(dn_runs, names=["evaluation"]).reset_index(level=0), by="evaluation")
glue("denoiser_arch", f"{cfg.denoiser_depth} hidden layers of {cfg.denoiser_width} channels", display=False)
glue("denoiser_threat", str(d_threat), display=False)
glue("denoiser_scale", f"{dn_info['metrics']['train_examples']:,} training images ({cfg.denoiser_epochs} epochs; "
     f"mean squared error {dn_info['metrics']['adversarial_mse']:.5f} before, "
     f"{dn_info['metrics']['train_mse']:.5f} after)", display=False)
pd.DataFrame({"clean (%)": interval_cells(dn_acc, "clean"), "robust (%)": interval_cells(dn_acc, "robust")}
             ).loc[list(dn_runs)]

# %% [markdown]
# The number to believe is the adaptive one: an attacker who can query the classifier can query
# the pipeline, and the pipeline is differentiable. Setting (a) measures how well the denoiser
# undoes one fixed attack, not robustness.
#
# ## The gradient-masking audit of every model
#
# Every model above, checked for the symptoms of masked gradients (Athalye et al. 2018; Carlini et
# al. 2019) on {glue:text}`audit_n` test images of its threat model: iterative against single-step
# attacks, short against long PGD, white-box against the Square attack, an unbounded budget, ε
# monotonicity, zero or non-finite gradients, the loss along its own gradient, the gradient
# against finite differences of the margin (a corrupted gradient fails here, not only a zero one),
# and, where they apply, stability across draws, EOT, and BPDA. Where they apply is found by
# behaviour, not by the model's classes: the draws and EOT checks run on any model that answers the
# same input differently from one call to the next, BPDA on any model with a stage that cuts the
# gradient (that stage is passed through as the identity on the backward pass). `fail` marks a
# model whose reported robustness a reader should not trust without a stronger attack; `n/a` a
# check that does not apply. The last
# row is a planted masked model, the black-box chapter's bit-depth reduction in front of the base
# VGG, to show what a failing audit looks like.

# %% tags=["remove-input"]
audits = pd.concat([plan.result("audit mnist", device), plan.result("audit cifar", device)], ignore_index=True)
verdicts = defenses.audit_table(audits)
glue("audit_n", str(cfg.audit_n), display=False)
glue("audit_failures", ", ".join(verdicts.index[(verdicts == "fail").any(axis=1)]) or "none", display=False)
verdicts

# %% [markdown]
# Models with at least one failed check: {glue:text}`audit_failures`. The evidence behind every
# verdict for the Table 2 randomized network:

# %% tags=["remove-input"]
audits[audits.model == defenses.randomized_name(cfg)].set_index("check")[["verdict", "evidence"]]

# %% [markdown]
# Where the robust evaluations of this chapter escalated, and how far the cascade alone overstated
# (robust examples under the cascade and after the escalation):

# %% tags=["remove-input"]
defenses.escalations({"MNIST-scale": plan.result("mnist_robust", device),
                      "CIFAR-10": plan.result("cifar_robust", device),
                      "capacity": plan.result("capacity_robust", device)})

# %% [markdown]
# ## The trade-off at a glance, and what it cost
#
# Clean accuracy against robust accuracy under the ensemble for every adversarially evaluated
# model of the chapter ({glue:text}`dataset`: {glue:text}`mnist_linf`; CIFAR-10:
# {glue:text}`cifar_linf`), and the training cost of every model: wall time on this machine and
# forward + backward passes relative to standard training of the same length.

# %% tags=["remove-input"]
scatter = defenses.tradeoff_points([(dataset_name, mnist_rows[mnist_rows.norm == "linf"], ""),
                                     ("CIFAR-10", cifar_rows, "VGG "), ("CIFAR-10", cap_rows, "")])
ax = plotting.tradeoff_scatter(scatter, title="Clean against robust accuracy of every model (L∞ ensemble)")
infos = defenses.training_records(plan, cfg)
display_table(defenses.training_cost(infos),
              {"method": ("method", None), "epochs": ("epochs", None), "examples": ("training examples", "{:,}"),
               "seconds": ("wall time", "{:.0f} s"), "forwards": ("forward passes", "{:,}"),
               "backwards": ("backward passes", "{:,}"), "relative cost": ("relative cost", "{:.1f}×")})

# %% [markdown]
# ## All defenses side by side
#
# Clean accuracy, robust accuracy under the strongest honest attack this chapter ran on each
# defense, and its training time: the ensemble for the trained CIFAR-10 models (the
# {glue:text}`cifar_linf`), EOT-PGD for the randomized network and the adaptive APGD-CE for
# the denoiser.

# %% tags=["remove-input"]
defenses.comparison(defenses.closing_entries(cfg, cifar_rows, t2_rows, dn_runs, infos,
                                             dn_info["metrics"]["train_seconds"]))

# %% [markdown]
# Every adversarial method pays its attack's passes on every batch (the relative cost in the
# cost table), and the scatter shows what it bought: how far each model moved up in robust
# accuracy, and how far left in clean accuracy.
