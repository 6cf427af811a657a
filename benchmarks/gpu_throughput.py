"""Training throughput on a GPU, fp32 against bf16, and what it predicts for each chapter's paper profile.

0. Evaluation throughput of PGD-10 on the chapters' CIFAR-10 VGG-19 (width 0.125): examples × steps
   per second through ``evaluate_attack`` at batch 256, at the device's default batch
   (``attack_batch_size``), and at that batch with CUDA graphs (``ADVLAB_CUDA_GRAPHS=1``).
1. Images per second of one SGD step (forward, backward, update) and of one PGD-10 adversarial
   training step (ten input-gradient passes, then the step) for full-width VGG-19 and
   PreAct-ResNet-18 on CIFAR-10-shaped batches, channels-last, fp32 (IEEE, no TF32) and bf16
   autocast. Random inputs: the rates do not depend on the pixels.
2. The same SGD-step rate, fp32, for every architecture the paper profiles train, and from it each
   chapter's paper-profile training time: epochs × training-split size × (1 + the method's attack
   passes per example) / rate. Evaluations are not counted (they are smaller than the trainings
   and depend on early stopping), so read the estimate as the trainings' share.

    python benchmarks/gpu_throughput.py [--device cuda] [--batch 512] [--seconds 2]
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from advlab import ThreatModel
from advlab.chapters import CHAPTERS, chapter_plan, get_chapter
from advlab.execution import configure_environment
from advlab.attacks.graphs import GRAPHS_ENV
from advlab.data import dataset_spec, load_dataset
from advlab.evaluate import evaluate_attack
from advlab.evaluate.rows import attack_batch_size
from advlab.models import build_model, to_device
from advlab.precision import Policy, strict_fp32

TRAIN_SIZE = {"mnist": 60000, "fashion-mnist": 60000, "cifar10": 50000}


def attack_passes(method: str, p: dict) -> float:
    """Extra forward+backward passes per training example that a method spends on its attack."""
    frac = p.get("fraction", 1.0)
    steps = p.get("steps", 0)
    per = {"standard": 0, "noise": 0, "fgsm": 1, "fgsm_rs": 1, "pgd": steps, "trades": steps + 1,
           "mixed": 2 * steps if p.get("strategy", "max") == "max" else steps, "ibp": 1,
           "deepfool": 2 * p.get("steps", 50)}[method]
    return frac * per


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def rate(model, shape, device, precision: str, batch: int, adv_steps: int, seconds: float) -> float:
    """Images per second of training steps (with ``adv_steps`` PGD steps before each) for ``seconds``."""
    x = torch.rand((batch, *shape), device=device)
    y = torch.randint(0, 10, (batch,), device=device)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    threat = ThreatModel("linf", 8 / 255)
    policy = Policy(precision)  # the training loop's: the model in the precision, the step around it in fp32
    net = policy.model(model)

    def step():
        xa = x
        if adv_steps:
            model.eval()
            for _ in range(adv_steps):
                xr = xa.detach().requires_grad_(True)
                with policy.context():
                    loss = F.cross_entropy(net(xr).float(), y)
                g, = torch.autograd.grad(loss, xr)
                xa = threat.project(x, threat.step(xa, g, 2 / 255))
            model.train()
        with policy.context():
            loss = F.cross_entropy(net(xa).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    with strict_fp32():
        for _ in range(3):
            step()
        _sync(device)
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            step()
            n += 1
            if n % 5 == 0:
                _sync(device)
        _sync(device)
        return n * batch / (time.perf_counter() - t0)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--eval-examples", type=int, default=4096, help="CIFAR-10 test images for the PGD-10 table")
    ap.add_argument("--width", type=float, default=1.0, help="width of the headline models (CPU dry runs: 0.125)")
    args = ap.parse_args()
    configure_environment(Path(__file__).resolve().parents[1])  # the repository's data and cache
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"# PGD-10 evaluation throughput on {name}, VGG-19 x0.125, CIFAR-10 test images\n")
    print("| batch | CUDA graphs | examples x steps / s | vs batch 256 |\n|---|---|---|---|")
    torch.manual_seed(0)
    vgg = to_device(build_model("vgg19", "cifar10", width=0.125), device).eval()
    data = load_dataset("cifar10", "test").subset(args.eval_examples, seed=0).to(device)
    base = None
    for batch, graphs in ((256, "0"), (attack_batch_size(device), "0"), (attack_batch_size(device), "1")):
        if graphs == "1" and device.type != "cuda":
            continue
        os.environ[GRAPHS_ENV] = graphs
        run = lambda: evaluate_attack(vgg, data, attack="pgd", threat=ThreatModel("linf", 8 / 255), steps=10,
                                      batch_size=batch, seed=0, progress=False)
        with strict_fp32():
            run()
            _sync(device)
            t0 = time.perf_counter()
            run()
            _sync(device)
        r = len(data) * 10 / (time.perf_counter() - t0)
        base = base or r
        print(f"| {batch} | {'on' if graphs == '1' else 'off'} | {r:,.0f} | {r / base:.2f}x |")
    os.environ.pop(GRAPHS_ENV, None)

    print(f"\n# training throughput on {name} (torch {torch.__version__}, batch {args.batch}, channels-last on CUDA)\n")
    print("| model | precision | SGD step (img/s) | PGD-10 AT step (img/s) |")
    print("|---|---|---|---|")
    headline = {}
    for arch, opts in (("vgg19", {"width": args.width}), ("preact_resnet18", {"width": args.width})):
        for precision in ("fp32", "bf16"):
            torch.manual_seed(0)
            model = to_device(build_model(arch, "cifar10", **opts), device).train()
            r = [rate(model, (3, 32, 32), device, precision, args.batch, k, args.seconds) for k in (0, 10)]
            headline[arch, precision] = r
            print(f"| {arch} (width {args.width:g}) | {precision} | {r[0]:,.0f} | {r[1]:,.0f} |")
    for arch in ("vgg19", "preact_resnet18"):
        (a, b), (c, d) = headline[arch, "fp32"], headline[arch, "bf16"]
        print(f"\n{arch}: bf16 / fp32 = {c / a:.2f}x (SGD step), {d / b:.2f}x (PGD-10 adversarial training)")

    # every architecture of the paper plans, fp32, and the trainings' time per chapter
    rates = {}
    print("\n| chapter (paper profile) | trainings | SGD-step passes (M images) | estimated training time |")
    print("|---|---|---|---|")
    for chapter in CHAPTERS:
        cfg = get_chapter(chapter).resolve("paper", {})
        trainings = chapter_plan(chapter, cfg).all_trainings().values()
        seconds = passes = 0.0
        for t in trainings:
            key = (t.dataset, t.model, tuple(sorted(t.model_options.items())))
            if key not in rates:
                torch.manual_seed(0)
                model = to_device(build_model(t.model, t.dataset, **t.model_options), device).train()
                rates[key] = rate(model, dataset_spec(t.dataset).shape, device, "fp32", args.batch, 0,
                                  args.seconds / 2)
            n = t.epochs * (t.train_subset or TRAIN_SIZE[t.dataset]) * (1 + attack_passes(t.method, t.params))
            passes += n
            seconds += n / rates[key]
        print(f"| {chapter} | {len(trainings)} | {passes / 1e6:.1f} | {seconds / 60:.1f} min |")
    print("\n| architecture | SGD step fp32 (img/s) |\n|---|---|")
    for (ds, arch, opts), r in rates.items():
        print(f"| {arch} {dict(opts) or ''} on {ds} | {r:,.0f} |")


if __name__ == "__main__":
    main()
