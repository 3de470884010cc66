"""``sasrec``: the SASRec sequential recommender as a hybridrec :class:`~hybridrec.Recommender`."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from hybridrec import Dataset, Recommender
from hybridrec.checks import check_float, check_int
from hybridrec.recommender import Request
from hybridrec_sequential.sequences import Sequences, hold_out_last, pad_left

logger = logging.getLogger(__name__)


class SASRecRecommender(Recommender):
    """Self-attentive sequential recommendation (Kang & McAuley 2018) in plain PyTorch.

    The user's items, oldest first, pass through ``blocks`` causal self-attention blocks; the
    last hidden state scores every item as the next one (dot product with the item embeddings,
    shared with the input). Training predicts the next item at every position of every
    user's training sequence (long sequences are cut into windows of ``max_len``), with full
    softmax cross-entropy over the catalogue (``loss="softmax"``) or binary cross-entropy
    against ``negatives`` random items (``loss="bce"``, the paper's). With ``validation``, each
    user with three or more items has their last item held out inside ``fit``; training stops
    after ``patience`` epochs without a better validation NDCG@10 and keeps the best epoch's
    weights (``training_`` records every epoch). At recommendation time the whole history,
    held-out items included, is the input.

    Requests:

    * a known user id: their training items in time order;
    * a :class:`~hybridrec.UserContext` with a history: that history in the order given (ids
      outside the catalogue raise :class:`~hybridrec.errors.UnknownIdError`, as for every
      recommender); only the newest ``max_len`` items are read;
    * catalogue items without any training interaction have no learned embedding: inside a
      history they are skipped (the recommendations' ``notes`` say how many), and as
      recommendations they score one less than the lowest-scored trained item of the request,
      so they rank last (ties by item code);
    * no usable history (empty, or only skipped items): training popularity.

    Each request is scored on its own (unpadded, a batch of one), so batched answers equal
    single ones exactly. Defaults were chosen on ml-latest-small for a CPU budget of minutes
    (``benchmarks/sequential/README.md``); ``epochs`` bounds the fit time.

    Args:
        max_len: the longest input sequence (newest items kept).
        hidden: embedding and hidden size.
        blocks: self-attention blocks.
        heads: attention heads (must divide ``hidden``).
        dropout: dropout rate.
        loss: ``"softmax"`` (full cross-entropy) or ``"bce"`` (sampled negatives).
        negatives: random negatives per position with ``loss="bce"``.
        lr: Adam learning rate.
        weight_decay: Adam weight decay.
        batch_size: training windows per step.
        epochs: most training epochs.
        patience: epochs without a better validation NDCG@10 before stopping.
        validation: hold out each user's last item for early stopping; without it, train
            ``epochs`` epochs on everything and keep the last weights.
        seed: seeds weight initialisation, shuffling, dropout and negatives.
        device: ``"cpu"``, ``"cuda"``, ...; None means CUDA when available, else CPU.
        progress: show a tqdm progress bar over epochs.

    Example:
        >>> import hybridrec as hr
        >>> rec = hr.create("sasrec", max_len=50, epochs=20)
    """

    name = "sasrec"
    full_scoring = True
    uses = frozenset({"history", "order"})
    #: left out of ``"all"`` in benchmark configs (the quick demo run included): training takes
    #: minutes on a CPU, so a config names it (see benchmarks/sequential/)
    in_all = False

    def __init__(
        self,
        max_len: int = 50,
        hidden: int = 64,
        blocks: int = 2,
        heads: int = 1,
        dropout: float = 0.2,
        loss: str = "softmax",
        negatives: int = 1,
        lr: float = 3e-3,
        weight_decay: float = 0.0,
        batch_size: int = 64,
        epochs: int = 20,
        patience: int = 3,
        validation: bool = True,
        seed: int = 0,
        device: str | None = None,
        progress: bool = False,
    ) -> None:
        from hybridrec_sequential.training import LOSSES

        super().__init__()
        self.max_len = check_int("max_len", max_len, minimum=1)
        self.hidden = check_int("hidden", hidden, minimum=1)
        self.blocks = check_int("blocks", blocks, minimum=1)
        self.heads = check_int("heads", heads, minimum=1)
        if self.hidden % self.heads:
            raise ValueError(f"heads ({heads}) must divide hidden ({hidden})")
        self.dropout = check_float("dropout", dropout, minimum=0.0)
        if self.dropout >= 1:
            raise ValueError(f"dropout must be below 1, not {dropout}")
        if loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, not {loss!r}")
        self.loss = loss
        self.negatives = check_int("negatives", negatives, minimum=1)
        self.lr = check_float("lr", lr, minimum=0.0, exclusive=True)
        self.weight_decay = check_float("weight_decay", weight_decay, minimum=0.0)
        self.batch_size = check_int("batch_size", batch_size, minimum=1)
        self.epochs = check_int("epochs", epochs, minimum=1)
        self.patience = check_int("patience", patience, minimum=1)
        for flag, value in (("validation", validation), ("progress", progress)):
            if not isinstance(value, bool):
                raise TypeError(f"{flag} must be True or False, not {value!r}")
        self.validation = validation
        self.progress = progress
        self.seed = check_int("seed", seed)
        if device is not None and not isinstance(device, str):
            raise TypeError(f"device must be a string such as 'cpu' or 'cuda', not {device!r}")
        self.device = device
        self.net_: Any = None
        self.sequences_: Sequences | None = None
        self.training_: dict[str, Any] | None = None

    # ------------------------------------------------------------------ fitting
    @property
    def trained_(self) -> np.ndarray | None:
        """Which items had training interactions (the others are skipped and rank last)."""
        return None if self.popularity_ is None else np.asarray(self.popularity_ > 0)

    def _torch_device(self) -> Any:
        import torch

        if self.device is not None:
            return torch.device(self.device)
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")

    def _new_net(self, n_items: int) -> Any:
        from hybridrec_sequential.network import SASRecNet

        return SASRecNet(
            n_items, self.max_len, self.hidden, self.blocks, self.heads, self.dropout
        ).to(self._torch_device())

    def _fit(self, train: Dataset) -> None:
        import torch

        from hybridrec_sequential.training import TrainSettings
        from hybridrec_sequential.training import train as run_training

        seqs = Sequences.from_dataset(train)
        # without validation nobody is long enough to lose an item
        holdout = hold_out_last(seqs, 3 if self.validation else len(seqs.items) + 1)
        torch.manual_seed(self.seed)
        net = self._new_net(train.n_items)
        settings = TrainSettings(
            self.max_len, self.loss, self.negatives, self.lr, self.weight_decay,
            self.batch_size, self.epochs, self.patience, self.seed, self.progress,
        )  # fmt: skip
        log = run_training(net, holdout, settings)
        self.net_ = net
        self.sequences_ = seqs
        self.training_ = log.to_dict()

    # ------------------------------------------------------------------ scoring
    def _sequence(self, request: Request) -> np.ndarray:
        """The item codes a request is answered from, oldest first, untrained items skipped."""
        assert self.sequences_ is not None
        ctx = request.context
        if request.code >= 0 and (ctx is None or not ctx.history):
            return self.sequences_.of(request.code)
        trained = self.trained_
        assert trained is not None
        return request.history[trained[request.history]]

    def _score_sequences(self, seqs: list[np.ndarray]) -> np.ndarray:
        """Dense scores ``(len(seqs), n_items)``; see the class docstring for untrained items."""
        import torch

        trained = self.trained_
        assert trained is not None and self.popularity_ is not None
        out = np.empty((len(seqs), len(trained)), dtype=np.float64)
        device = self.net_.item_emb.weight.device
        self.net_.eval()
        # one sequence at a time, unpadded: a request's scores never depend on the other
        # requests of a batch (padding and batch shape change float results in the last bits)
        with torch.inference_mode():
            for row, s in enumerate(seqs):
                seq = torch.from_numpy(pad_left([s], self.max_len)).to(device)
                out[row] = self.net_.score_last(seq)[0].cpu().numpy()
        if not trained.all():
            floor = out[:, trained].min(axis=1, initial=0.0) - 1.0
            out[:, ~trained] = floor[:, None]
        for row, s in enumerate(seqs):
            if not len(s):
                out[row] = self.popularity_
        return out

    def _score_all_requests(self, requests: Sequence[Request]) -> np.ndarray:
        return self._score_sequences([self._sequence(r) for r in requests])

    def _score_all(self, users: np.ndarray, histories: sp.csr_matrix) -> np.ndarray:
        # known users: their time-ordered training sequence; others: the history in code order
        # (a binary matrix has no order; requests with an order go through _score_all_requests)
        trained = self.trained_
        assert self.sequences_ is not None and trained is not None
        seqs = []
        for row, code in enumerate(users):
            if code >= 0:
                seqs.append(self.sequences_.of(int(code)))
            else:
                items = histories.indices[histories.indptr[row] : histories.indptr[row + 1]]
                seqs.append(items[trained[items]])
        return self._score_sequences(seqs)

    def _request_notes(self, request: Request) -> tuple[str, ...]:
        ctx = request.context
        if self.trained_ is None or ctx is None or not ctx.history:
            return ()
        skipped = int((~self.trained_[request.history]).sum())
        if not skipped:
            return ()
        return (f"{skipped} history item(s) without training interactions skipped by sasrec",)

    # ------------------------------------------------------------------ persistence
    def _state(self) -> dict[str, np.ndarray]:
        assert self.sequences_ is not None
        net = {f"net.{k}": v.detach().cpu().numpy() for k, v in self.net_.state_dict().items()}
        return {
            "seq_indptr": self.sequences_.indptr,
            "seq_items": self.sequences_.items,
            **net,
        }

    def _load_state(self, arrays: dict[str, np.ndarray]) -> None:
        import torch

        n_items = len(self.item_ids_)
        self.sequences_ = Sequences(arrays["seq_indptr"], arrays["seq_items"])
        if len(self.sequences_) != len(self.user_ids_):
            raise ValueError("sasrec state does not match the saved catalogue or users")
        net = self._new_net(n_items)
        weights = {k[4:]: torch.from_numpy(v) for k, v in arrays.items() if k.startswith("net.")}
        try:
            net.load_state_dict(weights)
        except RuntimeError as err:  # missing, unexpected or wrongly shaped weights
            raise ValueError(f"sasrec weights do not fit the saved parameters: {err}") from err
        net.eval()
        self.net_ = net

    def _extra_manifest(self) -> dict[str, Any]:
        return {"training": self.training_}

    def _load_extra(self, folder: Path, manifest: dict[str, Any]) -> None:
        self.training_ = manifest.get("training")
