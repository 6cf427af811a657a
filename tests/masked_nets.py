"""Defenses written as a reader writes them: plain ``nn.Module``s around a trained network, with none of
advlab's wrapper classes. Each masks the gradient in its own way; the adaptive evaluation must see
through every one by behaviour alone."""
import numpy as np
import scipy.ndimage
import torch
import torch.nn.functional as F
from torch import nn


class MedianRound(nn.Module):
    """A 3×3 median filter, then rounding to ``levels`` grey levels, inside ``forward``."""

    def __init__(self, net, levels=8):
        super().__init__()
        self.net, self.levels = net, levels

    def forward(self, x):
        p = F.pad(x, (1, 1, 1, 1), mode="replicate").unfold(2, 3, 1).unfold(3, 3, 1)
        x = p.reshape(*x.shape, 9).median(-1).values
        return self.net(torch.round(x * (self.levels - 1)) / (self.levels - 1))


class NumpyRoundTrip(nn.Module):
    """A blur and a quantisation computed in numpy: no gradient path at all."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        a = x.detach().cpu().numpy()
        a = scipy.ndimage.uniform_filter(a, size=(1, 1, 2, 2))
        a = np.round(a * 15) / 15
        return self.net(torch.from_numpy(a.astype(np.float32)).to(x.device))


class PartialDetach(nn.Module):
    """Bright pixels keep their gradient, the others are detached."""

    def __init__(self, net, threshold=0.5):
        super().__init__()
        self.net, self.threshold = net, threshold

    def forward(self, x):
        return self.net(torch.where(x > self.threshold, x, x.detach()))


class _ZeroBackward(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return torch.round(x * 4) / 4

    @staticmethod
    def backward(ctx, g):
        return torch.zeros_like(g)


class ZeroBackward(nn.Module):
    """A quantiser written as an autograd Function whose backward returns zero, called in ``forward``."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net(_ZeroBackward.apply(x))


class ThermometerNet(nn.Module):
    """Thermometer encoding (Buckman et al. 2018): ``levels`` channels of x > k/levels, then a network
    that takes them (here a 1×1 convolution that decodes the code, then ``net``)."""

    def __init__(self, net, levels=16):
        super().__init__()
        self.net, self.levels = net, levels
        self.decode = nn.Conv2d(levels, 1, 1, bias=False)
        with torch.no_grad():
            self.decode.weight.fill_(1.0 / levels)

    def forward(self, x):
        k = torch.arange(self.levels, device=x.device, dtype=x.dtype).view(1, -1, 1, 1) / self.levels
        code = (x > k).to(x.dtype)
        return self.net(self.decode(code))


class Scaled(nn.Module):
    """Logits × ``t``: the softmax saturates and the cross-entropy's gradient underflows."""

    def __init__(self, net, t=1e4):
        super().__init__()
        self.net, self.t = net, t

    def forward(self, x):
        return self.net(x) * self.t


class InputDropout(nn.Module):
    """Dropout on the input at test time (a fresh mask at every call, from the global generator)."""

    def __init__(self, net, p=0.3):
        super().__init__()
        self.net, self.p = net, p

    def forward(self, x):
        return self.net(F.dropout(x, self.p, training=True) * (1 - self.p))


class ResizePad(nn.Module):
    """Random resizing and padding (Xie et al. 2018): resize to r × r, r drawn in [lo, size], pad back
    to size at a random offset."""

    def __init__(self, net, lo=24):
        super().__init__()
        self.net, self.lo = net, lo

    def forward(self, x):
        size = x.shape[-1]
        r = int(torch.randint(self.lo, size + 1, ()).item())
        z = F.interpolate(x, size=(r, r), mode="nearest")
        top = int(torch.randint(0, size - r + 1, ()).item())
        left = int(torch.randint(0, size - r + 1, ()).item())
        return self.net(F.pad(z, (left, size - r - left, top, size - r - top)))


class StraightThroughOf(nn.Module):
    """The attacker's BPDA model for a defense ``f = net ∘ g`` with g ≈ identity: ``f``'s output forward,
    ``net``'s gradient at g(x) backward (the identity through g, Athalye et al. 2018)."""

    def __init__(self, defended, net):
        super().__init__()
        self.defended, self.net = defended, net

    def forward(self, x):
        with torch.no_grad():
            z = self.defended(x)
        out = self.net(x)
        return out + (z - out).detach()
