"""auto_LiRPA's bounds on networks advlab exported: the reference side of ``bounds_graph.py``.

    PYTHON_WITH_AUTO_LIRPA benchmarks/lirpa_reference.py IN.npz OUT.npz

Runs in any environment that has torch, numpy and auto_LiRPA (it imports nothing of advlab): PyPI's
only auto_LiRPA release, 0.3, needs torch < 1.13, which advlab's own environment cannot hold, so
``bounds_graph.py --lirpa-python`` writes the networks and inputs to ``IN.npz``, runs this script in
that other interpreter and reads ``OUT.npz`` back. A network travels as a list of layers
(``normalize``, rebuilt as a 1×1 convolution, ``conv``, ``linear``, ``relu``, ``flatten``, ``maxpool``)
with its weights and its logits on the inputs, so both libraries bound the same function.

For every network, every method (``CROWN``; ``CROWN-Optimized``, α-CROWN with the intermediate
bounds re-optimised: in 0.3 its ``fix_intermediate_layer_bounds`` option gave the very same bounds on
the book's networks, so only this one runs) and every batch size: the lower bounds of the margins
``z_y − z_j`` over the L∞ ball ∩ [0, 1] (that set is a box, the input auto_LiRPA takes) and the
seconds per example, with auto_LiRPA's default optimiser settings (20 iterations, lr 0.5, decay 0.98).
"""
import json
import sys
import time

import auto_LiRPA
import numpy as np
import torch
from auto_LiRPA import BoundedModule, BoundedTensor
from auto_LiRPA.perturbations import PerturbationLpNorm
from torch import nn


def normalize(mean, std):
    """(x − mean) / std as a 1×1 convolution: the same map, in the form auto_LiRPA 0.3 bounds in its
    fast (patches) mode; a division by a constant before a convolution is refused there."""
    c = mean.numel()
    conv = nn.Conv2d(c, c, 1)
    conv.weight.data = torch.diag(1 / std.flatten()).view(c, c, 1, 1)
    conv.bias.data = -(mean / std).flatten()
    return conv


def build(spec, arrays, prefix):
    layers = []
    for i, layer in enumerate(spec):
        t = lambda name: torch.from_numpy(arrays[f"{prefix}/{i}/{name}"])  # noqa: E731
        kind = layer["kind"]
        if kind == "normalize":
            layers.append(normalize(t("mean"), t("std")))
        elif kind == "conv":
            w = t("weight")
            m = nn.Conv2d(w.shape[1], w.shape[0], tuple(w.shape[2:]), stride=layer["stride"], padding=layer["padding"])
            m.weight.data, m.bias.data = w, t("bias")
            layers.append(m)
        elif kind == "linear":
            w = t("weight")
            m = nn.Linear(w.shape[1], w.shape[0])
            m.weight.data, m.bias.data = w, t("bias")
            layers.append(m)
        elif kind == "relu":
            layers.append(nn.ReLU())
        elif kind == "flatten":
            layers.append(nn.Flatten())
        elif kind == "maxpool":
            layers.append(nn.MaxPool2d(layer["kernel"], layer["stride"], layer["padding"]))
        else:
            raise ValueError(f"unknown layer {kind!r}")
    return nn.Sequential(*layers).eval()


def margins(y, k):
    eye = torch.eye(k)
    return eye[y].unsqueeze(1) - eye.unsqueeze(0)


def bounds(net, x, y, eps, method, fix_intermediate):
    # 0.3's sparse slopes fail on the book's ConvNet (a shape mismatch in reconstruct_full_alpha): dense
    # slopes, the same bounds
    opts = {"optimize_bound_args": {"fix_intermediate_layer_bounds": fix_intermediate},
            "sparse_features_alpha": False, "sparse_spec_alpha": False}
    model = BoundedModule(net, torch.empty_like(x[:1]), bound_opts=opts, device="cpu", verbose=False)
    ptb = PerturbationLpNorm(norm=float("inf"), eps=eps, x_L=(x - eps).clamp(0, 1), x_U=(x + eps).clamp(0, 1))
    lower, _ = model.compute_bounds(x=(BoundedTensor(x, ptb),), C=margins(y, net(x[:1]).shape[1]), method=method,
                                    bound_upper=False)
    return lower.detach()


def main(src, dst):
    arrays = dict(np.load(src))
    task = json.loads(str(arrays.pop("task")))
    torch.set_num_threads(task["threads"])
    x, y = torch.from_numpy(arrays.pop("x")), torch.from_numpy(arrays.pop("y")).long()
    out = {}
    methods = {"CROWN": ("CROWN", True), "CROWN-Optimized": ("CROWN-Optimized", False)}
    for name, spec in task["nets"].items():
        net = build(spec, arrays, name)
        with torch.no_grad():  # the same function as advlab's model, or nothing to compare
            drift = (net(x) - torch.from_numpy(arrays[f"{name}/logits"])).abs().max().item()
        if drift > 1e-4:
            raise SystemExit(f"{name}: the rebuilt network's logits differ from advlab's by {drift:.2e}")
        for eps in task["eps"]:
            for label, (method, fix) in methods.items():
                out[f"{name}|{eps}|{label}|lower"] = bounds(net, x, y, eps, method, fix).numpy()
                for batch in task["batches"]:
                    n = min(len(x), task["timed"])
                    start = time.perf_counter()
                    for i in range(0, n, batch):
                        bounds(net, x[i:i + batch], y[i:i + batch], eps, method, fix)
                    out[f"{name}|{eps}|{label}|seconds|{batch}"] = np.array((time.perf_counter() - start) / n)
    versions = {"torch": torch.__version__, "auto_LiRPA": auto_LiRPA.__version__}
    out["versions"] = np.array(json.dumps(versions))
    np.savez(dst, **out)


if __name__ == "__main__":
    main(*sys.argv[1:3])
