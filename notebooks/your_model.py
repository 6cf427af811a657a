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
# # Your model: the whole method on a model you bring
#
# The earlier chapters judged the book's own models. This one judges **yours**, with the same
# method and the same code, and renders the result as this page:
#
# 1. a **model card**: what the file holds and how it was loaded, and its clean accuracy per class;
# 2. **robust accuracy** under every threat model you name, the per-example worst case over the
#    cascade APGD-CE → APGD-T → Square (the evaluation of the defenses chapter), escalated to BPDA,
#    transfer and a larger Square budget where the model's gradients mislead, overall and per class,
#    with which attack broke each example;
# 3. **minimal perturbations** (DeepFool, Carlini-Wagner L2) beside models of the book;
# 4. the **gradient-masking audit**, every check with its evidence;
# 5. **certificates** where they apply: IBP and CROWN when bound propagation supports every operation
#    of the network (linear and convolution layers, batch norm, pooling, max pooling, residual sums;
#    otherwise the page names the one it does not), CROWN up to `crown_max_relus` ReLUs, randomized
#    smoothing if you ask for it;
# 6. a **verdict** computed from the numbers, and the command that reproduces the page.
#
# On test examples $(x_i, y_i)$ and the threat model
# $S(x) = \{x' : \|x' - x\|_p \le \varepsilon,\ 0 \le x' \le 1\}$,
#
# $$
# \text{certified accuracy} \;\le\; \frac{1}{n} \sum_{i=1}^{n}
# \mathbb{1}\bigl[\hat{k}(x') = y_i \ \text{for every}\ x' \in S(x_i)\bigr]
# \;\le\; \text{attacked accuracy}:
# $$
#
# an attack gives the upper bound, a certificate the lower one. Every accuracy is on a seeded,
# class-stratified subset of the test split and carries a 95% Clopper-Pearson interval; every ε is
# in pixel units of [0, 1].
#
# **Bring a model.** Save the weights (`torch.save(model.state_dict(), "net.pt")`) or export
# TorchScript (`torch.jit.script(model).save("net.ts")`), then
#
# ```
# advlab run your-model --profile quick -p model net.pt -p architecture mypackage.nets:build \
#     -p dataset cifar10 -p normalization dataset -p threats '[linf 0.0314, l2 0.5]'
# ```
#
# `architecture` is an advlab architecture (`small_cnn`, `vgg19`, ...), a `package.module:function`
# that returns the network (imported only because you named it), or `torchscript`. Weights load
# with `weights_only=True`, so the file cannot run code. The file's sha256 is part of every result
# key: an unchanged file renders from the cache, a changed one recomputes. For a GPU,
# `advlab precompute your-model -p model net.pt ... --device cuda` (or under `torchrun`) fills the
# cache first. This page runs the method on one of the book's own models, named
# `book:CHAPTER/NAME`.

# %% tags=["remove-cell"]
import pandas as pd
from IPython.display import Markdown, display
from myst_nb import glue

import advlab
from advlab import plotting
from advlab.chapters import chapter_config, your_model
from advlab.data import dataset_spec
from advlab.evaluate import display_table, norm_summary

# %% tags=["parameters", "remove-cell"]
# None: the profile's value (see the table below)
profile = "quick"
model = None
architecture = None
model_options = None
normalization = None
norm_mean = None
norm_std = None
dataset = None
seed = None
mnist_epochs = None
mnist_train_subset = None
cifar_model = None
cifar_width = None
cifar_epochs = None
cifar_train_subset = None
references = None
threats = None
n_clean = None
n_test = None
apgd_steps = None
apgd_targets = None
square_queries = None
escalation_queries = None
batch_size = None
n_minimal = None
deepfool_steps = None
cw_steps = None
cw_search_steps = None
audit_n = None
audit_steps = None
eot_draws = None
certificates = None
crown_max_relus = None
smoothing_sigma = None
smoothing_n0 = None
smoothing_n = None
smoothing_alpha = None
n_smooth = None

# %% [markdown]
# The parameters of this run, after validation (the command that reproduces it closes the page).

# %% tags=["remove-input"]
cfg = chapter_config("your-model", globals())
pd.set_option("display.max_colwidth", 200)
device = advlab.default_device()
plan = your_model.plan(cfg)  # loads and probes the model: a file that cannot be used fails here
model = your_model.model_of(plan)
spec = dataset_spec(cfg.dataset)
cfg.table()

# %% [markdown]
# ## The model card

# %% tags=["remove-input"]
card = plan.result("card", device)
your_model.card_table(card, cfg, model)

# %% [markdown]
# Clean accuracy per class, on {glue:text}`n_clean` test examples:

# %% tags=["remove-input"]
clean = plan.result("clean", device)
glue("n_clean", f"{len(clean):,}", display=False)
your_model.per_class(clean, "correct", spec.classes)

# %% [markdown]
# ## Robust accuracy under the cascade
#
# Each example is attacked by APGD-CE, then, if it survived, by APGD-T towards the
# {glue:text}`apgd_targets` highest other classes ({glue:text}`apgd_steps` iterations each), then by
# Square ({glue:text}`square_queries` queries), which needs no gradient. The model is probed first:
# where its gradient is zero, cut, partial or inconsistent, or where Square breaks what the gradient
# attacks could not, the evaluation **escalates** on the examples still standing: APGD through BPDA
# where a submodule cuts the gradient, transfer from the book's standard model, and Square with
# {glue:text}`escalation_queries` queries; a model that is random in eval mode is attacked through EOT.
# An example counts as robust only if it is classified correctly and survives every attack that ran.
# With several threat models, *union* counts an example as robust only if it is robust under every
# one of them.

# %% tags=["remove-input"]
robust = plan.result("robust", device)
glue("apgd_steps", str(cfg.apgd_steps), display=False)
glue("square_queries", f"{cfg.square_queries:,}", display=False)
glue("apgd_targets", str(cfg.apgd_targets), display=False)
glue("escalation_queries", f"{cfg.escalation_queries:,}", display=False)
your_model.robust_summary(robust)[["n", "clean (%)", "robust (%)"]]

# %% [markdown]
# Per class (robust accuracy, %, with 95% intervals): a model can be robust on average and fragile
# on a few classes.

# %% tags=["remove-input"]
your_model.per_class(robust, "robust", spec.classes, by=["threat"])

# %% [markdown]
# Which attack broke each example first. Examples that the gradient attacks leave to Square are the
# ones whose gradients mislead; the attacks after Square ran only where the evaluation escalated.
# Beside it, how far the cascade alone would have overstated robust accuracy.

# %% tags=["remove-input"]
display(your_model.broken_by(robust))
your_model.overstatement_table(robust)

# %% [markdown]
# ## Minimal perturbations
#
# DeepFool (L2) and Carlini-Wagner L2 look for the smallest perturbation that changes each
# prediction, without a budget: the distribution of these sizes says how far the decision
# boundary lies from the test points, beside the book's models named in `references`. Sizes are
# over the correctly classified examples each attack fooled; the median carries its 95%
# order-statistic interval.

# %% tags=["remove-input"]
norm_rows = your_model.minimal_norm_rows(plan, device)
display_table(norm_summary(norm_rows), {
    "n": ("n", None), "success": ("success", "{:.1%}"), ("ci_low", "ci_high"): ("success 95% CI", "[{:.1%}, {:.1%}]"),
    "median_l2": ("median L2", "{:.3f}"), ("median_l2_low", "median_l2_high"): ("median 95% CI", "[{:.3f}, {:.3f}]"),
    ("l2_q25", "l2_q75"): ("L2 IQR", "[{:.3f}, {:.3f}]")})

# %% tags=["remove-input"]
Markdown(your_model.gradient_text(norm_rows))

# %% tags=["remove-input"]
fig = plotting.norm_distributions(norm_rows, attack="CW-L2", title="Minimal L2 perturbations (Carlini-Wagner)")

# %% [markdown]
# ## The gradient-masking audit
#
# The checks of Athalye, Carlini & Wagner (2018) and Carlini et al. (2019), on
# {glue:text}`audit_n` test examples at the first threat model ({glue:text}`audit_threat`). A
# *fail* means the attacks above cannot be trusted on this model; *n/a* means the check does not
# apply (a deterministic model has no draws to compare).

# %% tags=["remove-input"]
audit = plan.result("audit", device)
glue("audit_n", str(cfg.audit_n), display=False)
glue("audit_threat", cfg.threats[0], display=False)
your_model.audit_findings(audit)

# %% [markdown]
# ## Certificates

# %% tags=["remove-input"]
bound_tables = your_model.bound_tables(plan, device)
bounds = your_model.bound_summary(bound_tables, cfg)
Markdown(your_model.bounds_text(bounds, bound_tables))

# %% tags=["remove-input"]
bounds if isinstance(bounds, pd.DataFrame) else None

# %% tags=["remove-input"]
smooth = your_model.smoothing_rows(plan, device)
Markdown(your_model.smoothing_text(cfg, smooth))

# %% tags=["remove-input"]
your_model.smoothing_summary(smooth, cfg)

# %% [markdown]
# ## Verdict

# %% tags=["remove-input"]
Markdown(your_model.verdict(cfg, card, robust, audit, bounds, smooth))

# %% [markdown]
# ## Reproduce this page

# %% tags=["remove-input"]
Markdown(f"```\n{your_model.command(cfg)}\n```")
