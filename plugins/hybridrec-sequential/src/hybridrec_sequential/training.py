"""Training SASRec: next-item loss on every position, early stopping on validation NDCG@10.

Two losses: ``"softmax"`` (cross-entropy over the whole catalogue at every position, the
default) and ``"bce"`` (the paper's binary cross-entropy of the true next item against
``negatives`` items drawn uniformly at random per position).
"""

from __future__ import annotations

import copy
import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from hybridrec_sequential.losses import full_softmax_loss, sampled_bce_loss
from hybridrec_sequential.network import SASRecNet
from hybridrec_sequential.sequences import Holdout, Sequences, pad_left, training_windows

logger = logging.getLogger(__name__)

LOSSES = ("softmax", "bce")
#: NDCG cut-off of the validation metric
VALID_K = 10
SCORE_BATCH = 256


@dataclass(frozen=True)
class TrainSettings:
    """The training half of SASRec's parameters (see :class:`SASRecRecommender`)."""

    max_len: int
    loss: str
    negatives: int
    lr: float
    weight_decay: float
    batch_size: int
    epochs: int
    patience: int
    seed: int
    progress: bool


@dataclass
class TrainLog:
    """What happened while training: one dict per epoch and the epoch whose weights were kept."""

    epochs: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    best_ndcg: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"best_epoch": self.best_epoch, "best_ndcg10": self.best_ndcg, "epochs": self.epochs}


def _loss(
    net: SASRecNet,
    seq: torch.Tensor,
    targets: torch.Tensor,
    settings: TrainSettings,
    rng: np.random.Generator,
) -> torch.Tensor:
    hidden = net(seq)
    valid = targets > 0
    h, t = hidden[valid], targets[valid] - 1  # (positions, hidden), item codes
    if settings.loss == "softmax":
        return full_softmax_loss(h, net.item_weights(), t)
    return sampled_bce_loss(h, net.item_weights(), t, settings.negatives, rng)


def _batch(seqs: Sequences, windows: np.ndarray, max_len: int) -> tuple[np.ndarray, np.ndarray]:
    items = seqs.items
    inputs = [items[a : b - 1] for a, b in windows]
    targets = [items[a + 1 : b] for a, b in windows]
    return pad_left(inputs, max_len), pad_left(targets, max_len)


@torch.no_grad()
def validation_ndcg(
    net: SASRecNet, seqs: Sequences, users: np.ndarray, targets: np.ndarray, max_len: int
) -> float:
    """Mean NDCG@10 of each user's held-out item after their sequence (full ranking, the
    sequence's own items excluded, ties counted against the target)."""
    net.eval()
    device = net.item_emb.weight.device
    total = 0.0
    for start in range(0, len(users), SCORE_BATCH):
        chunk = users[start : start + SCORE_BATCH]
        history = [seqs.of(int(u)) for u in chunk]
        scores = net.score_last(torch.from_numpy(pad_left(history, max_len)).to(device))
        for row, seen in enumerate(history):
            scores[row, torch.from_numpy(seen).to(device)] = -torch.inf
        tgt = torch.from_numpy(targets[start : start + SCORE_BATCH]).to(device)
        target_score = scores.gather(1, tgt[:, None])
        rank = (scores >= target_score).sum(1) - 1  # 0 = first
        gain = torch.where(rank < VALID_K, 1.0 / torch.log2(rank.double() + 2.0), 0.0)
        total += float(gain.sum())
    return total / max(len(users), 1)


def train(net: SASRecNet, holdout: Holdout, settings: TrainSettings) -> TrainLog:
    """Train ``net`` in place on ``holdout.train``; keep the weights of the best validation
    epoch (or the last epoch when there is no validation user).

    Raises:
        ValueError: no user has two interactions (nothing to learn a next item from).
    """
    from tqdm.auto import tqdm

    seqs = holdout.train
    windows = training_windows(seqs, settings.max_len)
    if not len(windows):
        raise ValueError(
            "sasrec needs at least one user with two or more interactions to learn from"
        )
    device = net.item_emb.weight.device
    rng = np.random.default_rng(settings.seed)
    optimiser = torch.optim.Adam(
        net.parameters(), lr=settings.lr, betas=(0.9, 0.98), weight_decay=settings.weight_decay
    )
    log = TrainLog()
    best_state: dict[str, torch.Tensor] | None = None
    stale = 0
    n_batches = math.ceil(len(windows) / settings.batch_size)
    bar = tqdm(range(1, settings.epochs + 1), desc="sasrec", disable=not settings.progress)
    for epoch in bar:
        started = time.perf_counter()
        net.train()
        order = rng.permutation(len(windows))
        total = 0.0
        for b in range(n_batches):
            rows = windows[order[b * settings.batch_size : (b + 1) * settings.batch_size]]
            inputs, targets = _batch(seqs, rows, settings.max_len)
            loss = _loss(
                net,
                torch.from_numpy(inputs).to(device),
                torch.from_numpy(targets).to(device),
                settings,
                rng,
            )
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            total += float(loss.detach())
        seconds = time.perf_counter() - started
        record = {"epoch": epoch, "loss": total / n_batches, "train_s": seconds}
        if len(holdout.users):
            ndcg = validation_ndcg(net, seqs, holdout.users, holdout.targets, settings.max_len)
            record["valid_ndcg10"] = ndcg
            if log.best_ndcg is None or ndcg > log.best_ndcg:
                log.best_ndcg, log.best_epoch, stale = ndcg, epoch, 0
                best_state = copy.deepcopy(net.state_dict())
            else:
                stale += 1
        else:
            log.best_epoch = epoch
        log.epochs.append(record)
        bar.set_postfix({k: round(v, 4) for k, v in record.items() if k != "epoch"})
        logger.debug("sasrec epoch %s", record)
        if len(holdout.users) and stale >= settings.patience:
            break
    if best_state is not None:
        net.load_state_dict(best_state)
    net.eval()
    logger.info(
        "sasrec: %d epochs, kept epoch %d (valid NDCG@10 %s)",
        len(log.epochs),
        log.best_epoch,
        log.best_ndcg,
    )
    return log
