"""A deployed model as a black-box attacker sees it: batched queries, answers in one output mode,
a query count per example and a budget that cannot be exceeded."""
from __future__ import annotations

import torch

from ...checks import check_choice, check_label_range, check_positive_int
from ...errors import InputError
from ...models import eval_mode
from ..base import Oracle

#: What a :class:`QueryOracle` answers, from most to least informative: logits, probabilities, the top class
#: with its probability, or the label alone.
OUTPUTS = ("logits", "probs", "top1", "label")


class QueryBudgetError(InputError):
    """An attack asked for more queries than an example's budget allows."""


class QueryOracle(Oracle):
    """Answers batched queries of ``model`` under ``torch.no_grad()`` and counts them per example.

    Parameters
    ----------
    model : callable, images (N, C, H, W) in [0, 1] -> logits (N, K)
        Kept private: an attack holding the oracle gets answers, never gradients or weights.
    output : {"logits", "probs", "top1", "label"}, default "probs"
        What a query returns: logits (N, K); softmax probabilities (N, K); the label and its
        probability, ``(label, p)``, each (N,); or the label alone (N,).
    budget : int or None
        Queries allowed per example (None: unlimited). A query that would exceed an example's
        budget raises :class:`QueryBudgetError` and is not answered.
    batch_size : int, default 128
        The model sees a large query (a population of every example, say) in slices of this many
        inputs: one query for the accounting, bounded activation memory for the model (on CPU,
        batches of thousands of images ran 2-5× slower per image than slices of 128).

    Notes
    -----
    An attack calls ``oracle(x, idx)``: ``x`` holds B candidate inputs and ``idx`` (B,) says which
    example each one is for (repeats allowed: a population of candidates for one example costs one
    query each). ``oracle.queries`` is the (N,) count so far.
    """

    def __init__(self, model, *, output: str = "probs", budget: int | None = None, batch_size: int = 128):
        if isinstance(model, QueryOracle) or not callable(model):
            raise InputError(f"QueryOracle wraps a model (a callable returning logits), got {type(model).__name__}")
        check_choice(output, OUTPUTS, "oracle output")
        if budget is not None:
            check_positive_int(budget=budget)
        check_positive_int(batch_size=batch_size)
        self.__model = model
        self.batch_size = batch_size
        self.output = output
        self.budget = budget
        self.queries = torch.zeros(0, dtype=torch.long)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        """The hidden model's logits, batched; torch's device or dtype error (a model left on another
        device, float64 queries) becomes one that says what to change. Its parameters are never read."""
        try:
            with torch.no_grad(), eval_mode(self.__model):
                return torch.cat([self.__model(x[i:i + self.batch_size]) for i in range(0, x.shape[0],
                                                                                         self.batch_size)])
        except RuntimeError as e:
            if not any(w in str(e) for w in ("device", "dtype", "type")):
                raise
            first = str(e).strip().splitlines()[0]
            raise InputError(f"the oracle's model cannot take x ({x.dtype} on {x.device}): {first}. Put the "
                             "model and the queries on one device and in one dtype") from None

    def reset(self, n: int, device, labels: torch.Tensor | None = None) -> None:
        """Start counting for a batch of ``n`` examples (the attack's framework calls this).

        ``labels`` are checked against the model's number of classes on the first query.
        """
        self.queries = torch.zeros(n, dtype=torch.long, device=device)
        self._labels = labels

    def attack_budget(self, queries: int | None, attack: str) -> int:
        """The queries per example an attack may spend: its own ``queries``, capped by the oracle's
        budget, or the oracle's budget alone; neither is an error."""
        budget = queries if queries is not None else self.budget
        if budget is None:
            raise InputError(f"{attack} needs a query budget: pass queries=... or an oracle with a budget")
        check_positive_int(queries=budget)
        return budget if self.budget is None else min(budget, self.budget)

    def _answer(self, logits: torch.Tensor):
        if self.output == "logits":
            return logits
        probs = logits.float().softmax(1)
        if self.output == "probs":
            return probs
        p, label = probs.max(1)
        return (label, p) if self.output == "top1" else label

    def __call__(self, x: torch.Tensor, idx: torch.Tensor):
        if idx.shape != (x.shape[0],):
            raise InputError(f"idx must give the example of each of the {x.shape[0]} queries, "
                             f"got shape {tuple(idx.shape)}")
        asked = torch.bincount(idx, minlength=self.queries.shape[0])
        if self.budget is not None and bool(((self.queries + asked) > self.budget).any()):
            over = ((self.queries + asked) > self.budget).nonzero().squeeze(1).tolist()
            raise QueryBudgetError(f"query budget of {self.budget} per example exceeded for example(s) {over[:10]}")
        self.queries += asked
        logits = self._forward(x)
        if getattr(self, "_labels", None) is not None:
            check_label_range(self._labels, logits.shape[1])
            self._labels = None
        return self._answer(logits)

    def final_labels(self, x: torch.Tensor) -> torch.Tensor:
        """Predicted labels for the framework's final check of an attack's result: no query counted."""
        return self._forward(x).argmax(1)


def margin(scores: torch.Tensor, labels: torch.Tensor, targeted: bool = False) -> torch.Tensor:
    """The margin loss the score-based attacks minimise: z_y − max_{k≠y} z_k (untargeted), or
    max_{k≠t} z_k − z_t toward a target t. Negative exactly when the input fools the model."""
    z_y = scores.gather(1, labels[:, None]).squeeze(1)
    other = scores.scatter(1, labels[:, None], -float("inf")).amax(1)
    return other - z_y if targeted else z_y - other
