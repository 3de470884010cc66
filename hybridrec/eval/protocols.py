"""Evaluation protocols. Each prepares its data once, then evaluates any fitted recommender.

Protocols that share training data share a ``fit_key``, so the harness fits a recommender once
for all of them (full ranking and the sampled protocols both fit on the leave-one-out split).
"""

from __future__ import annotations

import logging
import zlib
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from hybridrec.data.dataset import Dataset
from hybridrec.data.splits import Split, cold_start, leave_one_out
from hybridrec.eval import metrics as M
from hybridrec.recommender import FALLBACK_STAGE, Recommender
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
    #: what was ranked when not the whole catalogue (``"top-20 of embedding"``)
    candidates: str | None = None
    #: share of requests answered by the shared popularity fallback
    fallback_share: float = 0.0


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

    def _note(self, notes: str) -> None:
        """Put a split's caveat (no timestamps: a random hold-out) in front of the description."""
        if notes:
            self.description = f"NOTE: {notes}; where this text says 'by time', read that. " + (
                self.description
            )


def _no_test_users(split: Split) -> str:
    """Why a leave-one-out protocol has nobody to evaluate (the harness skips it with this)."""
    need = split.params.get("min_interactions", 3)
    return (
        f"no test users with at least {need} interactions: leave-one-out holds out each "
        "user's last interaction for test and the one before for validation, and users with "
        "fewer go wholly to training"
    )


CHUNK = 128  # users per evaluation batch
#: what a cold-start user's preference text is written from
TEXT_SOURCES = ("genres", "titles")
CALIBRATION_PAIRS = 2000  # training pairs every pairwise score is calibrated on


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
        "over the full list; diversity, coverage, novelty, Gini and popularity of the top-{k0}. "
        "A recommender that cannot score the whole catalogue is ranked over its own candidate "
        "list (named in its row): items outside the list rank below it, its AUC counts only the "
        "items it scored (NaN for users whose test item is not among them), and "
        "candidate_recall is the share of users whose test item is in the list."
    )

    def __init__(self, dataset: Dataset, *, split: Split | None = None, **kwargs: Any) -> None:
        super().__init__(dataset, **kwargs)
        self.split = split or leave_one_out(dataset, seed=self.seed)
        self.train = self.split.train_and_valid
        self.train_matrix = self.train.matrix("binary")
        test = self.split.test
        self.users = self.sample_users(test.active_users())
        if len(self.users) == 0:
            raise ValueError(_no_test_users(self.split))
        self.relevant = test.matrix("binary")[self.users]
        self.description = self.description.format(k0=self.k[0])
        self._note(self.split.notes)

    @property
    def fit_data(self) -> Dataset:
        return self.train

    def evaluate(self, rec: Recommender, *, progress: bool = False) -> Evaluation:
        kmax = max(self.k)
        ev = Evaluation()
        if rec.full_scoring:
            top, auc = self._full(rec, kmax, progress)
        else:
            top, auc, in_list = self._candidate_lists(rec, kmax, progress)
            ev.candidates = rec.candidate_source
            ev.per_user["candidate_recall"] = in_list
        for k in self.k:
            ev.per_user[f"ndcg@{k}"] = M.ndcg_at_k(top, self.relevant, k)
            ev.per_user[f"hr@{k}"] = M.hit_rate_at_k(top, self.relevant, k)
            ev.per_user[f"recall@{k}"] = M.recall_at_k(top, self.relevant, k)
            ev.per_user[f"precision@{k}"] = M.precision_at_k(top, self.relevant, k)
        ev.per_user[f"mrr@{kmax}"] = M.mrr_at_k(top, self.relevant, kmax)
        ev.per_user["auc"] = auc
        k0 = self.k[0]
        train_matrix = self.train_matrix
        popularity = self.train.item_popularity()
        ev.per_user[f"diversity@{k0}"] = M.intra_list_diversity(top, k0, cooccurrence=train_matrix)
        ev.per_user[f"novelty@{k0}"] = M.novelty(top, k0, popularity, self.train.n_users)
        ev.per_user[f"avg_popularity@{k0}"] = M.average_popularity(top, k0, popularity)
        ev.scalars[f"coverage@{k0}"] = M.catalogue_coverage(top, k0, self.train.n_items)
        ev.scalars[f"gini@{k0}"] = M.gini_index(top, k0, self.train.n_items)
        return ev

    def _chunks(self, progress: bool, desc: str) -> Any:
        starts = range(0, len(self.users), CHUNK)
        return _tqdm(starts, enabled=progress, desc=desc)

    def _full(self, rec: Recommender, kmax: int, progress: bool) -> tuple[np.ndarray, np.ndarray]:
        """Top ``kmax`` over the catalogue, and the per-user AUC against every unseen item."""
        seen = self.train_matrix
        ranked, aucs = [], []
        for start in self._chunks(progress, f"{rec.name} full ranking"):
            users = self.users[start : start + CHUNK]
            ranked.append(rec.recommend_codes(users, kmax)[0])
            ids = [str(u) for u in self.dataset.user_ids[users]]
            scores = np.asarray(rec.score_all(ids), dtype=np.float64)
            candidates = np.ones(scores.shape, dtype=bool)
            rows, cols = seen[users].nonzero()
            candidates[rows, cols] = False
            aucs.append(M.auc_per_user(scores, self.relevant[start : start + CHUNK], candidates))
        return np.vstack(ranked), np.concatenate(aucs)

    def _candidate_lists(
        self, rec: Recommender, kmax: int, progress: bool
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Top ``kmax`` of the recommender's own candidate list, AUC over the items it scored."""
        n = max(kmax, int(rec.candidate_count or kmax))
        lookup = pd.Index(self.dataset.item_ids)
        top = np.full((len(self.users), kmax), -1, dtype=np.int64)
        aucs, in_list = [], []
        for start in self._chunks(progress, f"{rec.name} candidates"):
            users = self.users[start : start + CHUNK]
            ids = [str(u) for u in self.dataset.user_ids[users]]
            lists = rec.recommend_batch(ids, n, on_unused="ignore")
            scores = np.full((len(users), self.dataset.n_items), -np.inf)
            scored = np.zeros(scores.shape, dtype=bool)
            for row, recs in enumerate(lists):
                codes = lookup.get_indexer([r.item_id for r in recs])
                top[start + row, : min(kmax, len(codes))] = codes[:kmax]
                scores[row, codes] = [r.score for r in recs]
                scored[row, codes] = True
            relevant = self.relevant[start : start + CHUNK]
            in_list.append(np.asarray((relevant.multiply(scored)).sum(axis=1)).ravel() > 0)
            aucs.append(M.auc_per_user(scores, relevant, scored))
        return top, np.concatenate(aucs), np.concatenate(in_list).astype(np.float64)


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
        split = split or leave_one_out(dataset, seed=self.seed)
        self._note(split.notes)
        self.train = split.train_and_valid
        test = split.test.interactions
        users = self.sample_users(split.test.active_users())
        if len(users) == 0:
            raise ValueError(_no_test_users(split))
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
            "baselines are fitted on. Every score, the recommenders' and the rating baselines' "
            f"alike, is calibrated by a logistic regression fitted on the same {CALIBRATION_PAIRS} "
            "(at most; seeded) pairs of the training users; auc is the global AUC of the "
            "calibrated scores over the test pairs (95% CI by bootstrap over users), auc_user the "
            "mean of per-user AUCs over test users with both liked and disliked pairs (it does not "
            "compare scores across users), logloss that of the calibrated probabilities. Rating "
            "baselines: item mean (shrunk to the global mean), the user's mean over the history, "
            "and a logistic regression on both."
        )
        if not getattr(dataset, "has_timestamps", True):
            self._note(
                "no timestamps: 'previous' and 'next' items follow the order of the file's rows"
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
        self.test_users = np.unique(self.test_pairs["user"].to_numpy())
        self.train_pairs = self._pairs(train_users)
        if len(self.train_pairs) > CALIBRATION_PAIRS:
            keep = np.sort(self.rng.choice(len(self.train_pairs), CALIBRATION_PAIRS, False))
            self.train_pairs = self.train_pairs.iloc[keep].reset_index(drop=True)
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
        test = self._scores(rec, self.test_pairs, progress, "test")
        calibration = self._scores(rec, self.train_pairs, progress, "calibration")
        return self._evaluation(test, calibration)

    def _scores(self, rec: Recommender, pairs: pd.DataFrame, progress: bool, what: str) -> Any:
        contexts = self.contexts(pairs)
        item_ids = list(self.dataset.item_ids[pairs["item"].to_numpy()])
        scores = np.empty(len(pairs))
        for start in _tqdm(
            range(0, len(pairs), 256), enabled=progress, desc=f"{rec.name} pairwise {what}"
        ):
            stop = start + 256
            scores[start:stop] = rec.score_pairs(contexts[start:stop], item_ids[start:stop])
        return scores

    def _evaluation(self, scores: np.ndarray, calibration: np.ndarray | None) -> Evaluation:
        """Global AUC of calibrated scores, per-user AUC and log-loss (see the description)."""
        labels = self.test_pairs["label"].to_numpy()
        users = self.test_pairs["user"].to_numpy()
        x = _finite(np.asarray(scores, dtype=np.float64))
        ev = Evaluation()
        if calibration is not None:
            y = self.train_pairs["label"].to_numpy()
            x_cal = _finite(np.asarray(calibration, dtype=np.float64))
            prob = _calibrate(x_cal.reshape(len(x_cal), -1), y, x.reshape(len(x), -1))
            ev.scalars["logloss"] = _log_loss(labels, prob)
            x = prob
        ev.pairwise = (x, labels, users)
        ev.scalars["auc"] = M.global_auc(x, labels)
        ev.per_user["auc_user"] = _per_user_auc(x, labels, users, self.test_users)
        return ev

    def rating_features(self, pairs: pd.DataFrame) -> np.ndarray:
        """Per pair: the item's mean rating (shrunk to the global mean) over the training
        users, and the user's mean rating over the pair's history (two columns)."""
        train = self.train.interactions
        rated = train[train["rating"].notna()]
        global_mean = float(rated["rating"].mean()) if len(rated) else 0.0
        shrink = 10.0
        n_items = self.dataset.n_items
        sums = np.bincount(rated["item"], rated["rating"].to_numpy(np.float64), n_items)
        counts = np.bincount(rated["item"], minlength=n_items)
        item_mean = (sums + shrink * global_mean) / (counts + shrink)
        im = item_mean[pairs["item"].to_numpy()]
        um = np.array(
            [np.nanmean(r) if np.isfinite(r).any() else global_mean for r in pairs["hist_ratings"]]
        )
        return np.column_stack([im, um])

    def rating_baselines(self) -> dict[str, Evaluation]:
        """Item mean, user (history) mean and their logistic-regression combination."""
        x_test = self.rating_features(self.test_pairs)
        x_train = self.rating_features(self.train_pairs)
        out = {
            "item-mean-rating": self._evaluation(x_test[:, 0], x_train[:, 0]),
            "user-mean-rating": self._evaluation(x_test[:, 1], x_train[:, 1]),
        }
        # the regression on both is itself fitted on the calibration pairs
        out["item+user-mean-lr"] = self._evaluation(x_test, x_train)
        return out


class ColdStart(Protocol):
    """Users held out entirely, asked with no history: with no text, or with their own words.

    Each held-out user's first ``seed_items`` liked items (by time) stand for what they would
    say about themselves; the relevant items are the ones they liked after those. The
    ``cold-start`` variant asks with no text (only a profile, when the dataset has one); the
    ``cold-start-text`` variant adds a preference text written from the seed items' genres and
    tags by the ``cold_start_preference`` prompt template (never their titles), so a
    recommender that reads text can use it. Both variants evaluate the same users on the same
    relevant items.
    """

    fit_key = "cold-start"

    def __init__(
        self,
        dataset: Dataset,
        *,
        frac: float,
        with_text: bool,
        seed_items: int = 3,
        split: Split | None = None,
        text_from: str = "genres",
        **kwargs: Any,
    ) -> None:
        if text_from not in TEXT_SOURCES:
            raise ValueError(f"text_from must be one of {TEXT_SOURCES}, not {text_from!r}")
        if not getattr(self, "name", ""):
            self.name = "cold-start-text" if with_text else "cold-start"
        super().__init__(dataset, **kwargs)
        self.with_text, self.seed_items, self.text_from = with_text, seed_items, text_from
        asked = (
            (
                "with a preference text written from the genres and tags of their first "
                f"{seed_items} liked items (template prompts/cold_start_preference.txt)"
                if text_from == "genres"
                else f"with a preference text naming the titles of their first {seed_items} "
                "liked items (template prompts/cold_start_titles.txt)"
            )
            if with_text
            else "with no history and no text (their profile only, when the dataset has one)"
        )
        self.description = (
            f"Cold start: {frac:.0%} of users (seeded) held out entirely; each is asked for as a "
            f"UserContext {asked}. Relevant items: what they liked (rating >= "
            f"{dataset.like_threshold:g}) after their first {seed_items} liked items; users "
            "with fewer liked items are skipped. Full ranking over the catalogue. A recommender "
            "that cannot use what the request carries answers with the shared popularity "
            "fallback and is reported once as such."
        )
        self.split = split or cold_start(dataset, test_frac=frac, valid_frac=0.0, seed=self.seed)
        if not getattr(dataset, "has_timestamps", True):
            self._note("no timestamps: a user's 'first' liked items follow the file's row order")
        test = self.split.test
        liked = test.interactions[test.liked_mask]  # sorted by user, then time
        position = liked.groupby("user").cumcount().to_numpy()
        later = liked[position >= seed_items]
        seeds = liked[position < seed_items]
        users = np.unique(later["user"].to_numpy())
        self.users = self.sample_users(users)
        if not len(self.users):
            raise ValueError(
                f"no held-out user liked more than {seed_items} items; cold start cannot be "
                "evaluated"
            )
        self.relevant = sp.csr_matrix(
            (np.ones(len(later)), (later["user"], later["item"])),
            shape=(dataset.n_users, dataset.n_items),
        )[self.users]
        seed_items_of = seeds.groupby("user")["item"].apply(list)
        write = preference_text if text_from == "genres" else titles_text
        self.texts = [
            write(dataset, seed_items_of.get(int(u), [])) if with_text else None for u in self.users
        ]
        self.later = later
        if with_text and not any(self.texts):
            raise ValueError("the catalogue has no genres or tags to write preference texts from")

    @property
    def fit_data(self) -> Dataset:
        return self.split.train

    def contexts(self) -> list[UserContext]:
        out = []
        for user, text in zip(self.users, self.texts, strict=True):
            profile = {}
            if self.dataset.users is not None:
                row = self.dataset.users.iloc[int(user)]
                profile = {k: v for k, v in row.items() if k != "user_id" and pd.notna(v)}
            out.append(UserContext(preference_text=text, profile=profile))
        return out

    def evaluate(self, rec: Recommender, *, progress: bool = False) -> Evaluation:
        kmax = max(self.k)
        contexts = self.contexts()
        lookup = pd.Index(self.dataset.item_ids)
        top = np.full((len(contexts), kmax), -1, dtype=np.int64)
        fallback = 0
        for start in _tqdm(
            range(0, len(contexts), CHUNK), enabled=progress, desc=f"{rec.name} {self.name}"
        ):
            batch = rec.recommend_batch(contexts[start : start + CHUNK], kmax, on_unused="ignore")
            for row, recs in enumerate(batch, start):
                codes = lookup.get_indexer([r.item_id for r in recs])
                top[row, : len(codes)] = codes
                fallback += bool(recs) and all(r.stage == FALLBACK_STAGE for r in recs)
        ev = Evaluation(fallback_share=fallback / max(1, len(contexts)))
        for k in self.k:
            ev.per_user[f"ndcg@{k}"] = M.ndcg_at_k(top, self.relevant, k)
            ev.per_user[f"hr@{k}"] = M.hit_rate_at_k(top, self.relevant, k)
            ev.per_user[f"recall@{k}"] = M.recall_at_k(top, self.relevant, k)
        ev.per_user[f"mrr@{kmax}"] = M.mrr_at_k(top, self.relevant, kmax)
        return ev


class ColdStartSampled(ColdStart):
    """The cold-start users of :class:`ColdStart`, each scored on 1 positive + N negatives.

    LLMRank's sampled setting for users with no history: the positive is the first item the
    user liked after their seed items; the negatives are drawn from the items the user never
    interacted with, uniformly (``sampling="random"``) or in proportion to training popularity
    (``"popularity"``), and the list is shuffled (seeded). Each recommender scores the list
    with :meth:`~hybridrec.recommender.Recommender.score` for the user's context (the same
    preference text as ``cold-start-text``); ties are broken at random (seeded).
    """

    def __init__(
        self, dataset: Dataset, *, negatives: int = 19, sampling: str = "random", **kwargs: Any
    ) -> None:
        if sampling not in ("random", "popularity"):
            raise ValueError(f"sampling must be 'random' or 'popularity', not {sampling!r}")
        with_text = kwargs.pop("with_text", True)
        self.name = f"cold-start-sampled-{sampling}" + ("" if with_text else "-notext")
        super().__init__(dataset, with_text=with_text, **kwargs)
        self.negatives, self.sampling = negatives, sampling
        how = "uniformly" if sampling == "random" else "in proportion to training popularity"
        self.description += (
            f" Sampled variant: the first item each user liked after the seed items is ranked "
            f"among {negatives} negatives drawn {how} from the items they never interacted "
            "with, shuffled; score ties broken at random (seeded). Sampled metrics are NOT "
            "comparable with full-ranking ones."
        )
        first_later = self.later.groupby("user")["item"].first()
        self.positives = first_later.loc[self.users].to_numpy()
        all_seen = dataset.matrix("binary").tocsr()
        pop = self.split.train.item_popularity().astype(np.float64) + 1.0
        self.candidates = _sample_lists(
            self.rng, self.users, self.positives, all_seen, pop, negatives, sampling
        )

    def evaluate(self, rec: Recommender, *, progress: bool = False) -> Evaluation:
        item_ids = rec.item_ids_
        contexts = self.contexts()
        tie_rng = np.random.default_rng(self.seed)
        ranks = np.empty(len(self.users), dtype=np.int64)
        rows = list(zip(contexts, self.positives, self.candidates, strict=True))
        for row, (ctx, pos, cands) in enumerate(
            _tqdm(rows, enabled=progress, desc=f"{rec.name} {self.name}")
        ):
            cands = cands[cands >= 0]
            scores = np.asarray(rec.score(ctx, list(item_ids[cands]), on_unused="ignore"))
            ranks[row] = _rank_of(scores, cands == pos, tie_rng)
        ev = Evaluation()
        for k in (k for k in self.k if k < self.negatives + 1):
            hit = ranks <= k
            ev.per_user[f"hr@{k}"] = hit.astype(np.float64)
            ev.per_user[f"ndcg@{k}"] = np.where(hit, 1.0 / np.log2(ranks + 1), 0.0)
        ev.per_user["mrr"] = 1.0 / ranks
        return ev


def _sample_lists(
    rng: np.random.Generator,
    users: np.ndarray,
    positives: np.ndarray,
    all_seen: sp.csr_matrix,
    pop: np.ndarray,
    negatives: int,
    sampling: str,
) -> np.ndarray:
    """Per user: the positive and ``negatives`` sampled unseen items, shuffled (-1 pads)."""
    out = np.empty((len(users), negatives + 1), dtype=np.int64)
    n_items = all_seen.shape[1]
    for row, (user, pos) in enumerate(zip(users, positives, strict=True)):
        allowed = np.ones(n_items, bool)
        allowed[all_seen.indices[all_seen.indptr[user] : all_seen.indptr[user + 1]]] = False
        pool = np.flatnonzero(allowed)
        p = None if sampling == "random" else pop[pool] / pop[pool].sum()
        negs = rng.choice(pool, size=min(negatives, len(pool)), replace=False, p=p)
        cands = np.concatenate([[pos], negs])
        if len(cands) < negatives + 1:
            cands = np.concatenate([cands, np.full(negatives + 1 - len(cands), -1)])
        out[row] = rng.permutation(cands)
    return out


def _rank_of(scores: np.ndarray, is_positive: np.ndarray, tie_rng: np.random.Generator) -> int:
    """1-based rank of the positive among the scores, ties broken at random; NaN is -inf."""
    scores = np.where(np.isnan(scores), -np.inf, np.asarray(scores, dtype=np.float64))
    pos_score = scores[is_positive][0]
    others = scores[~is_positive]
    greater = int((others > pos_score).sum())
    ties = int((others == pos_score).sum())
    return 1 + greater + int(tie_rng.integers(0, ties + 1))


def titles_text(dataset: Dataset, items: Sequence[int]) -> str | None:
    """A cold-start user's preference text naming the titles of items they liked
    (template ``cold_start_titles``); None when the items have no titles.

    Example:
        >>> from hybridrec.contract import synthetic_dataset
        >>> titles_text(synthetic_dataset(), [0, 1])
        "I liked 'Sci-fi 0' and 'Sci-fi 1'."
    """
    from hybridrec.templates import render

    if "title" not in dataset.items.columns:
        return None
    titles = [
        f"'{t.strip()}'"
        for t in dataset.items["title"].iloc[list(items)]
        if isinstance(t, str) and t.strip()
    ]
    return render("cold_start_titles", titles=_join(titles)) if titles else None


def preference_text(dataset: Dataset, items: Sequence[int], top: int = 3) -> str | None:
    """A cold-start user's preference text from the genres and tags of items they liked.

    The ``top`` most frequent genres (or categories) and tags of ``items`` fill the
    ``cold_start_preference`` prompt template; None when the items have neither.

    Example:
        >>> from hybridrec.contract import synthetic_dataset
        >>> preference_text(synthetic_dataset(), [0, 1])
        'I enjoy Sci-Fi.'
    """
    from hybridrec.templates import render

    columns = dataset.items.columns
    genre_col = next((c for c in ("genres", "category") if c in columns), None)
    genres = _most_frequent(dataset.items[genre_col].iloc[list(items)], top) if genre_col else []
    tags = _most_frequent(dataset.items["tags"].iloc[list(items)], top) if "tags" in columns else []
    if not genres and not tags:
        return None
    return render("cold_start_preference", genres=_join(genres), tags=_join(tags))


def _most_frequent(values: pd.Series, top: int) -> list[str]:
    """The ``top`` most frequent entries of list-valued (or scalar) cells, first seen first."""
    counts: dict[str, int] = {}
    for cell in values:
        entries = cell if isinstance(cell, list | tuple | np.ndarray) else [cell]
        for entry in entries:
            if isinstance(entry, str) and entry.strip() and entry != "(no genres listed)":
                key = entry.strip()
                counts[key] = counts.get(key, 0) + 1
    return sorted(counts, key=lambda k: -counts[k])[:top]


def _join(words: list[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    if len(words) < 2:
        return "".join(words)
    return ", ".join(words[:-1]) + " and " + words[-1]


def _finite(x: np.ndarray) -> np.ndarray:
    """Scores with NaN and infinities replaced by values just past the finite range."""
    finite = np.isfinite(x)
    if finite.all():
        return x
    lo, hi = (x[finite].min(), x[finite].max()) if finite.any() else (0.0, 0.0)
    out = np.where(np.isnan(x) | (x == -np.inf), lo - 1.0, x)
    return np.where(out == np.inf, hi + 1.0, out)


def _calibrate(x_fit: np.ndarray, y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """P(liked) from a logistic regression of ``y`` on ``x_fit`` (features standardised)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if len(np.unique(y)) < 2:  # nothing to calibrate against: the base rate
        return np.full(len(x), float(np.mean(y)) if len(y) else 0.5)
    model = make_pipeline(StandardScaler(), LogisticRegression()).fit(x_fit, y)
    return model.predict_proba(x)[:, 1]


def _log_loss(labels: np.ndarray, prob: np.ndarray) -> float:
    p = np.clip(prob, 1e-12, 1 - 1e-12)
    return float(-np.mean(labels * np.log(p) + (1 - labels) * np.log(1 - p)))


def _per_user_auc(
    scores: np.ndarray, labels: np.ndarray, users: np.ndarray, order: np.ndarray
) -> np.ndarray:
    """AUC within each user's pairs, aligned with ``order``; NaN without both classes."""
    out = np.full(len(order), np.nan)
    for row, user in enumerate(order):
        mine = users == user
        y = labels[mine]
        if 0 < y.sum() < len(y):
            out[row] = M.global_auc(scores[mine], y)
    return out


def build_protocols(
    dataset: Dataset, config: Any, seed: int
) -> tuple[list[Protocol], dict[str, str]]:
    """The protocols a :class:`~hybridrec.eval.config.BenchConfig` asks for, prepared.

    Returns the protocols and, for each one that cannot run on this dataset (pairwise AUC on
    implicit feedback, say), the reason it was skipped.
    """
    common = {"seed": seed, "users": config.users, "k": config.k}
    # full ranking and the sampled protocols evaluate the same leave-one-out split: split once
    wanted = {"full-ranking", "sampled"} & set(config.protocols)
    loo = leave_one_out(dataset, seed=seed) if wanted else None
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
                frac = config.cold_start_frac
                cold = cold_start(dataset, test_frac=frac, valid_frac=0.0, seed=seed)
                for with_text in (False, True):
                    try:
                        out.append(
                            ColdStart(
                                dataset,
                                frac=config.cold_start_frac,
                                with_text=with_text,
                                split=cold,
                                **common,
                            )
                        )
                    except ValueError as err:
                        label = "cold-start-text" if with_text else name
                        logger.warning("%s: protocol %s skipped: %s", dataset.name, label, err)
                        skipped[label] = str(err)
        except ValueError as err:
            logger.warning("%s: protocol %s skipped: %s", dataset.name, name, err)
            skipped[name] = str(err)
    return out, skipped
