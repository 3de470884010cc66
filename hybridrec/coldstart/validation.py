"""Validation users of the cold-start stage, simulated from the training data.

A training user with more than ``seed_items`` liked items is asked, as a cold-start user would
be, with the ``cold_start_preference`` text of their first ``seed_items`` liked items (by time;
the same template as the benchmark's cold-start protocol), and judged on the items they liked
after those.

Example:
    >>> from hybridrec.contract import synthetic_dataset
    >>> text, later = validation_requests(synthetic_dataset(), 1, 3, seed=0)[0]
    >>> text, len(later)
    ('I enjoy Sci-Fi.', 7)
"""

from __future__ import annotations

import numpy as np

from hybridrec.data.dataset import Dataset

__all__ = ["validation_requests"]


def validation_requests(
    train: Dataset, n_users: int, seed_items: int, seed: int = 0
) -> list[tuple[str, np.ndarray]]:
    """Up to ``n_users`` (preference text, later liked item codes) pairs, seeded.

    Users whose seed items give no text (no genres or tags) are skipped.
    """
    from hybridrec.eval.protocols import preference_text

    if n_users <= 0 or train.n_interactions == 0:
        return []
    liked = train.interactions[train.liked_mask]
    if "timestamp" in liked.columns:
        liked = liked.sort_values(["user", "timestamp"], kind="stable")
    position = liked.groupby("user").cumcount().to_numpy()
    counts = liked.groupby("user")["item"].size()
    users = counts.index[counts.to_numpy() > seed_items].to_numpy()
    rng = np.random.default_rng(seed)
    users = rng.permutation(users)
    out: list[tuple[str, np.ndarray]] = []
    groups = liked.assign(_pos=position).groupby("user")
    for user in users:
        rows = groups.get_group(user)
        seeds = rows.loc[rows["_pos"] < seed_items, "item"].to_numpy()
        later = rows.loc[rows["_pos"] >= seed_items, "item"].to_numpy()
        text = preference_text(train, list(seeds))
        if text and len(later):
            out.append((text, later.astype(np.int64)))
        if len(out) >= n_users:
            break
    return out
