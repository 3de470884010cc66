"""Evaluation protocols. Each prepares its data once, then evaluates any fitted recommender.

Protocols that share training data share a ``fit_key``, so the harness fits a recommender once
for all of them (full ranking and the sampled protocols both fit on the leave-one-out split).
"""

from __future__ import annotations

import logging
import zlib
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from hybridrec.data.dataset import Dataset
from hybridrec.data.splits import Split, cold_start, leave_one_out
from hybridrec.eval import metrics as M
from hybridrec.recommender import Recommender
from hybridrec.types import Interaction, UserContext

logger = logging.getLogger(__name__)


@dataclass
class Evaluation:
    """What a protocol measured for one recommender.

    ``per_user`` maps metric names to per-user arrays (aligned across recommenders, so they can
    be paired); ``scalars`` holds metrics with no per-user form (coverage, Gini, global AUC).
    ``pairwise`` keeps (scores, labels, user index) for the pair protocol's bootstrap.
    """

    per_user: dict[str, np.ndarray] = field(default_factory=dict)
    scalars: dict[str, float] = field(default_factory=dict)
    pairwise: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None


class Protocol(ABC):
    """Base class: ``prepare`` once per dataset and seed, then ``evaluate`` each recommender."""

    name: str = ""
    description: str = ""
    fit_key: str = ""

    def __init__(self, dataset: Dataset, *, seed: int, users: int | None, k: tuple[int, ...]):
        self.dataset, self.seed, self.max_users, self.k = dataset, seed, users, tuple(sorted(k))
        self.rng = np.random.default_rng([seed, zlib.crc32(self.name.encode())])

    @property
    @abstractmethod
    def fit_data(self) -> Dataset:
        """The dataset recommenders are fitted on."""

    @abstractmethod
    def evaluate(self, rec: Recommender, *, progress: bool = False) -> Evaluation:
        """Evaluate a recommender fitted on :attr:`fit_data`."""

    def sample_users(self, users: np.ndarray) -> np.ndarray:
        if self.max_users is not None and len(users) > self.max_users:
            users = np.sort(np.random.default_rng(self.seed).choice(users, self.max_users, False))
        return users

    def summary(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description}


def _tqdm(iterable: Any, *, enabled: bool, **kwargs: Any) -> Any:
    from tqdm.auto import tqdm

    return tqdm(iterable, disable=not enabled, leave=False, **kwargs)


class FullRanking(Protocol):
    """Leave-one-out by time, each test item ranked against every item the user has not seen."""

    name = "full-ranking"
    fit_key = "leave-one-out"
    description = (
        "Leave-one-out by time: each user's last interaction is the test item, the second-last "
        "is validation (merged into training for this run). Every unseen item of the catalogue "
        "is a candidate (full ranking, no sampling; score ties go to the lower item code). "
        "Accuracy metrics at each k, MRR and AUC (ties count 1/2) "
        "over the full list; diversity, coverage, novelty, Gini and popularity of the top-{k0}."
    )

    def __init__(self, dataset: Dataset, *, split: Split | None = None, **kwargs: Any) -> None:
        super().__init__(dataset, **kwargs)
        self.split = split or leave_one_out(dataset)
        self.train = self.split.train_and_valid
        self.train_matrix = self.train.matrix("binary")
        test = self.split.test
        self.users = self.sample_users(test.active_users())
        self.relevant = test.matrix("binary")[self.users]
        self.description = self.description.format(k0=self.k[0])

    @property
    def fit_data(self) -> Dataset:
        return self.train

    def evaluate(self, rec: Recommender, *, progress: bool = False) -> Evaluation:
        kmax = max(self.k)
        ranked = []
        chunks = np.array_split(self.users, max(1, len(self.users) // 128))
        for chunk in _tqdm(chunks, enabled=progress, desc=f"{rec.name} full ranking"):
            ranked.append(rec.recommend_codes(chunk, kmax)[0])
        top = np.vstack(ranked)
        ev = Evaluation()
        for k in self.k:
            ev.per_user[f"ndcg@{k}"] = M.ndcg_at_k(top, self.relevant, k)
            ev.per_user[f"hr@{k}"] = M.hit_rate_at_k(top, self.relevant, k)
            ev.per_user[f"recall@{k}"] = M.recall_at_k(top, self.relevant, k)
            ev.per_user[f"precision@{k}"] = M.precision_at_k(top, self.relevant, k)
        ev.per_user[f"mrr@{kmax}"] = M.mrr_at_k(top, self.relevant, kmax)
        ev.per_user["auc"] = self._auc(rec)
        k0 = self.k[0]
        train_matrix = self.train_matrix
        popularity = self.train.item_popularity()
        ev.per_user[f"diversity@{k0}"] = M.intra_list_diversity(top, k0, cooccurrence=train_matrix)
        ev.per_user[f"novelty@{k0}"] = M.novelty(top, k0, popularity, self.train.n_users)
        ev.per_user[f"avg_popularity@{k0}"] = M.average_popularity(top, k0, popularity)
        ev.scalars[f"coverage@{k0}"] = M.catalogue_coverage(top, k0, self.train.n_items)
        ev.scalars[f"gini@{k0}"] = M.gini_index(top, k0, self.train.n_items)
        return ev

    def _auc(self, rec: Recommender) -> np.ndarray:
        """Per-user AUC of the test item against every unseen item (dense scores, in chunks)."""
        seen = self.train_matrix
        out = []
        for start in range(0, len(self.users), 128):
            users = self.users[start : start + 128]
            hist = seen[users]
            scores = np.asarray(rec._score(users, hist), dtype=np.float64)
            candidates = np.ones(scores.shape, dtype=bool)
            rows, cols = hist.nonzero()
            candidates[rows, cols] = False
            out.append(M.auc_per_user(scores, self.relevant[start : start + 128], candidates))
        return np.concatenate(out)


class Sampled(Protocol):
    """Leave-one-out test item ranked among N sampled negatives (as in LLMRank)."""

    fit_key = "leave-one-out"

    def __init__(
        self,
        dataset: Dataset,
        *,
        negatives: int,
        sampling: str,
        split: Split | None = None,
        **kwargs: Any,
    ) -> None:
        self.name = f"sampled-{sampling}"
        super().__init__(dataset, **kwargs)
        self.negatives, self.sampling = negatives, sampling
        how = "uniformly" if sampling == "random" else "in proportion to training popularity"
        self.description = (
            f"Leave-one-out by time (as full-ranking); each test item is ranked among it and "
            f"{negatives} negatives sampled {how} "
            "from the items the user never interacted with, shuffled; score ties are broken at "
            "random (seeded). Sampled metrics are NOT comparable with full-ranking ones."
        )
        split = split or leave_one_out(dataset)
        self.train = split.train_and_valid
        test = split.test.interactions
        users = self.sample_users(split.test.active_users())
        positives = test.set_index("user").loc[users, "item"].to_numpy()
        self.users, self.positives = users, positives
        all_seen = dataset.matrix("binary").tocsr()
        pop = self.train.item_popularity().astype(np.float64) + 1.0
        self.candidates = np.empty((len(users), negatives + 1), dtype=np.int64)
        for row, (user, pos) in enumerate(zip(users, positives, strict=True)):
            allowed = np.ones(dataset.n_items, bool)
            allowed[all_seen.indices[all_seen.indptr[user] : all_seen.indptr[user + 1]]] = False
            pool = np.flatnonzero(allowed)
            p = None if sampling == "random" else pop[pool] / pop[pool].sum()
            negs = self.rng.choice(pool, size=min(negatives, len(pool)), replace=False, p=p)
            cands = np.concatenate([[pos], negs])
            if len(cands) < negatives + 1:
                cands = np.concatenate([cands, np.full(negatives + 1 - len(cands), -1)])
            self.candidates[row] = self.rng.permutation(cands)

    @property
    def fit_data(self) -> Dataset:
        return self.train

    def evaluate(self, rec: Recommender, *, progress: bool = False) -> Evaluation:
        item_ids = rec.item_ids_
        ranks = np.empty(len(self.users), dtype=np.int64)
        tie_rng = np.random.default_rng(self.seed)
        rows = zip(self.users, self.positives, self.candidates, strict=True)
        for row, (user, pos, cands) in enumerate(
            _tqdm(list(rows), enabled=progress, desc=f"{rec.name} {self.name}")
        ):
            cands = cands[cands >= 0]
            # every candidate is scored (a ranked list may leave out -inf items)
            scores = np.asarray(rec.score(str(self.dataset.user_ids[user]), list(item_ids[cands])))
            scores = np.where(np.isnan(scores), -np.inf, scores)
            pos_score = scores[cands == pos][0]
            others = scores[cands != pos]
            greater = int((others > pos_score).sum())
            ties = int((others == pos_score).sum())
            ranks[row] = 1 + greater + int(tie_rng.integers(0, ties + 1))
        ev = Evaluation()
        for k in (k for k in self.k if k < self.negatives + 1):  # k >= list length: always 1
            hit = ranks <= k
            ev.per_user[f"hr@{k}"] = hit.astype(np.float64)
            ev.per_user[f"ndcg@{k}"] = np.where(hit, 1.0 / np.log2(ranks + 1), 0.0)
        ev.per_user["mrr"] = 1.0 / ranks
        return ev


class PairwiseAUC(Protocol):
    """TALLRec-style: (previous ``history_len`` rated items, next item) -> liked? AUC."""

    name = "pairwise-auc"
    fit_key = "pairwise-auc"

    def __init__(
        self,
        dataset: Dataset,
        *,
        history_len: int,
        pairs_per_user: int,
        test_frac: float = 0.2,
        **kwargs: Any,
    ) -> None:
        super().__init__(dataset, **kwargs)
        self.history_len, self.pairs_per_user = history_len, pairs_per_user
        self.description = (
            f"TALLRec-style pairs: history = the user's previous {history_len} rated items "
            f"(oldest first), candidate = the next item, label = liked (rating >= "
            f"{dataset.like_threshold:g}); the latest {pairs_per_user} pairs per user. Test users "
            f"({test_frac:.0%}, seeded) are disjoint from the users recommenders and the rating "
            "baselines are fitted on. Global AUC over the test pairs, 95% CI by bootstrap over "
            "users. Rating baselines: item mean (shrunk to the global mean), the user's mean "
            "over the history, and a logistic regression on both."
        )
        users = dataset.active_users()
        perm = np.random.default_rng(self.seed).permutation(users)
        n_test = max(1, int(round(test_frac * len(users))))
        test_users = self.sample_users(np.sort(perm[:n_test]))
        train_users = np.sort(perm[n_test:])
        inter = dataset.interactions
        in_train = np.isin(inter["user"].to_numpy(), train_users)
        self.train = dataset.with_interactions(inter[in_train], f"{dataset.name}/pair-train")
        self.test_pairs = self._pairs(test_users)
        self.train_pairs = self._pairs(train_users)
        if not len(self.test_pairs) or self.test_pairs["label"].nunique() < 2:
            raise ValueError(
                f"pairwise-auc needs test users with more than {history_len} rated "
                "interactions and both liked and disliked candidates"
            )

    def _pairs(self, users: np.ndarray) -> pd.DataFrame:
        """One row per pair: user code, candidate item code, label, and the history rows."""
        ds, n = self.dataset, self.history_len
        records = []
        for user in users:
            rows = ds.user_rows(int(user))
            if len(rows) <= n or rows["rating"].isna().all():
                continue
            items = rows["item"].to_numpy()
            ratings = rows["rating"].to_numpy()
            times = rows["timestamp"].to_numpy()
            for pos in range(max(n, len(rows) - self.pairs_per_user), len(rows)):
                records.append(
                    (
                        int(user),
                        int(items[pos]),
                        float(ratings[pos]),
                        items[pos - n : pos],
                        ratings[pos - n : pos],
                        times[pos - n : pos],
                    )
                )
        frame = pd.DataFrame(
            records, columns=["user", "item", "rating", "hist_items", "hist_ratings", "hist_times"]
        )
        rating = frame["rating"].to_numpy(dtype=np.float64)
        frame["label"] = (np.isnan(rating) | (rating >= ds.like_threshold)).astype(np.int8)
        return frame

    @property
    def fit_data(self) -> Dataset:
        return self.train

    def contexts(self, pairs: pd.DataFrame) -> list[UserContext]:
        ids = self.dataset.item_ids
        return [
            UserContext(
                history=tuple(
                    Interaction(ids[i], None if np.isnan(r) else float(r), int(t))
                    for i, r, t in zip(hi, hr, ht, strict=True)
                )
            )
            for hi, hr, ht in zip(
                pairs["hist_items"], pairs["hist_ratings"], pairs["hist_times"], strict=True
            )
        ]

    def evaluate(self, rec: Recommender, *, progress: bool = False) -> Evaluation:
        pairs = self.test_pairs
        contexts = self.contexts(pairs)
        item_ids = list(self.dataset.item_ids[pairs["item"].to_numpy()])
        scores = np.empty(len(pairs))
        for start in _tqdm(
            range(0, len(pairs), 256), enabled=progress, desc=f"{rec.name} pairwise"
        ):
            stop = start + 256
            scores[start:stop] = rec.score_pairs(contexts[start:stop], item_ids[start:stop])
        return self._evaluation(scores)

    def _evaluation(self, scores: np.ndarray) -> Evaluation:
        labels = self.test_pairs["label"].to_numpy()
        users = self.test_pairs["user"].to_numpy()
        ev = Evaluation(pairwise=(scores, labels, users))
        ev.scalars["auc"] = M.global_auc(scores, labels)
        return ev

    def rating_baselines(self) -> dict[str, Evaluation]:
        """Item mean, user (history) mean and their logistic-regression combination."""
        from sklearn.linear_model import LogisticRegression

        train = self.train.interactions
        rated = train[train["rating"].notna()]
        global_mean = float(rated["rating"].mean()) if len(rated) else 0.0
        shrink = 10.0
        n_items = self.dataset.n_items
        sums = np.bincount(rated["item"], rated["rating"].to_numpy(np.float64), n_items)
        counts = np.bincount(rated["item"], minlength=n_items)
        item_mean = (sums + shrink * global_mean) / (counts + shrink)

        def features(pairs: pd.DataFrame) -> np.ndarray:
            im = item_mean[pairs["item"].to_numpy()]
            um = np.array(
                [
                    np.nanmean(r) if np.isfinite(r).any() else global_mean
                    for r in pairs["hist_ratings"]
                ]
            )
            return np.column_stack([im, um])

        x_test = features(self.test_pairs)
        x_train = features(self.train_pairs)
        out = {
            "item-mean-rating": self._evaluation(x_test[:, 0]),
            "user-mean-rating": self._evaluation(x_test[:, 1]),
        }
        y = self.train_pairs["label"].to_numpy()
        if len(np.unique(y)) == 2:
            lr = LogisticRegression().fit(x_train, y)
            out["item+user-mean-lr"] = self._evaluation(lr.decision_function(x_test))
        return out


class ColdStart(Protocol):
    """Users held out entirely: a recommender sees no history, only the (empty) context."""

    name = "cold-start"
    fit_key = "cold-start"

    def __init__(self, dataset: Dataset, *, frac: float, **kwargs: Any) -> None:
        super().__init__(dataset, **kwargs)
        self.description = (
            f"Cold start: {frac:.0%} of users (seeded) held out entirely; each is asked for as a "
            "UserContext with no history (and their profile when the dataset has one). Relevant "
            f"items: everything they liked (rating >= {dataset.like_threshold:g}); users who "
            "liked nothing are skipped. Full ranking over the catalogue."
        )
        self.split = cold_start(dataset, test_frac=frac, valid_frac=0.0, seed=self.seed)
        test = self.split.test
        self.users = self.sample_users(test.active_users())
        liked = test.interactions[test.liked_mask]
        self.relevant = sp.csr_matrix(
            (np.ones(len(liked)), (liked["user"], liked["item"])),
            shape=(dataset.n_users, dataset.n_items),
        )[self.users]

    @property
    def fit_data(self) -> Dataset:
        return self.split.train

    def evaluate(self, rec: Recommender, *, progress: bool = False) -> Evaluation:
        kmax = max(self.k)
        contexts = []
        for user in self.users:
            profile = {}
            if self.dataset.users is not None:
                row = self.dataset.users.iloc[int(user)]
                profile = {k: v for k, v in row.items() if k != "user_id" and pd.notna(v)}
            contexts.append(UserContext(profile=profile))
        lookup = pd.Index(self.dataset.item_ids)
        top = np.full((len(contexts), kmax), -1, dtype=np.int64)
        for start in _tqdm(range(0, len(contexts), 128), enabled=progress, desc=f"{rec.name} cold"):
            batch = rec.recommend_batch(contexts[start : start + 128], kmax)
            for row, recs in enumerate(batch, start):
                codes = lookup.get_indexer([r.item_id for r in recs])
                top[row, : len(codes)] = codes
        ev = Evaluation()
        for k in self.k:
            ev.per_user[f"ndcg@{k}"] = M.ndcg_at_k(top, self.relevant, k)
            ev.per_user[f"hr@{k}"] = M.hit_rate_at_k(top, self.relevant, k)
            ev.per_user[f"recall@{k}"] = M.recall_at_k(top, self.relevant, k)
        ev.per_user[f"mrr@{kmax}"] = M.mrr_at_k(top, self.relevant, kmax)
        return ev


def build_protocols(
    dataset: Dataset, config: Any, seed: int
) -> tuple[list[Protocol], dict[str, str]]:
    """The protocols a :class:`~hybridrec.eval.config.BenchConfig` asks for, prepared.

    Returns the protocols and, for each one that cannot run on this dataset (pairwise AUC on
    implicit feedback, say), the reason it was skipped.
    """
    common = {"seed": seed, "users": config.users, "k": config.k}
    # full ranking and the sampled protocols evaluate the same leave-one-out split: split once
    loo = leave_one_out(dataset) if {"full-ranking", "sampled"} & set(config.protocols) else None
    out: list[Protocol] = []
    skipped: dict[str, str] = {}
    for name in config.protocols:
        try:
            if name == "full-ranking":
                out.append(FullRanking(dataset, split=loo, **common))
            elif name == "sampled":
                for sampling in ("random", "popularity"):
                    out.append(
                        Sampled(
                            dataset,
                            negatives=config.negatives,
                            sampling=sampling,
                            split=loo,
                            **common,
                        )
                    )
            elif name == "pairwise-auc":
                if not dataset.is_explicit:
                    raise ValueError("pairwise-auc needs ratings; this dataset is implicit")
                out.append(
                    PairwiseAUC(
                        dataset,
                        history_len=config.history_len,
                        pairs_per_user=config.pairs_per_user,
                        **common,
                    )
                )
            elif name == "cold-start":
                out.append(ColdStart(dataset, frac=config.cold_start_frac, **common))
        except ValueError as err:
            logger.warning("%s: protocol %s skipped: %s", dataset.name, name, err)
            skipped[name] = str(err)
    return out, skipped
