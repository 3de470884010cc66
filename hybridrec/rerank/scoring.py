"""Fast, exact scoring of many candidates after one shared history.

A reranking prompt is ``template head + user history + candidate + question``: for 20
candidates of one user, everything up to the candidate is the same 20 times. Running each full
prompt (:meth:`Backbone.score_texts <hybridrec.rerank.backbone.Backbone.score_texts>`, the naive
path) encodes the history 20 times. Here the shared prefix runs once and only the candidates'
own tokens run on top of its key/value cache:

1. every full prompt (prefix + suffix) is tokenized exactly as the naive path would, and the
   longest run of leading token ids common to all of them is the shared part (so a BPE merge
   across the prefix/suffix boundary can never make the two paths see different tokens);
2. the shared part runs once (batch 1, ``use_cache=True``);
3. the candidates' remaining tokens run on top of a copy of that cache, in one of two ways:

   ``"batched"``
       candidates grouped by length under a token budget
       (:func:`~hybridrec.rerank.backbone.plan_batches`, counting the cached prefix every row
       attends to); per batch the cache is copied and repeated along the batch dimension
       (``DynamicCache.batch_repeat_interleave``), the suffixes are right-padded, and the
       decoder gets a 2-D attention mask covering prefix + suffix and ``position_ids``
       continuing after the prefix. Right padding keeps padding out of every real token's
       attention. Works with every attention implementation.
   ``"packed"``
       all suffixes concatenated into one row (no padding, no repeated cache), with a custom
       4-D attention mask: a suffix token sees the prefix and the earlier tokens of its own
       suffix only; positions restart after the prefix for each suffix. transformers uses a
       4-D mask as given, which the ``sdpa`` and ``eager`` attention implementations support
       (``flash_attention_2`` does not: ``"auto"`` then takes ``"batched"``). Fewer tokens run,
       and less memory.

4. each candidate is pooled on its last real token and the backbone's head scores it (the
   classifier's score layer, or the verbalizer's Yes-No logit difference).

Both strategies give the naive scores up to float rounding (tested below 1e-4 for GPT-2 and
Llama architectures, both heads).

Example:
    >>> from hybridrec.rerank.backbone import Backbone
    >>> bb = Backbone.load("tiny-gpt2", "verbalizer")
    >>> history = "Liked: Heat (1995), Casino (1995).\\nCandidate:"
    >>> fast = score_shared_prefix(bb, history, [" Toy Story (1995)", " Up (2009)"])
    >>> naive = bb.score_texts([history + " Toy Story (1995)", history + " Up (2009)"])
    >>> bool(abs(fast - naive).max() < 1e-4)
    True
"""

from __future__ import annotations

import copy
import inspect
import logging
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch

from hybridrec.rerank.backbone import DEFAULT_MAX_BATCH_TOKENS, Backbone, plan_batches

logger = logging.getLogger(__name__)

#: how the candidates run on top of the shared prefix (see the module's notes)
STRATEGIES = ("auto", "packed", "batched")

#: most suffix tokens in one packed row: bounds its attention mask to ``n x (prefix + n)``
PACKED_MAX_TOKENS = 2048

__all__ = [
    "common_prefix_length",
    "plan_batches",
    "resolve_strategy",
    "score_requests",
    "score_shared_ids",
    "score_shared_prefix",
]


def common_prefix_length(ids: Sequence[Sequence[int]]) -> int:
    """How many leading tokens all sequences share, leaving each at least one token of its own.

    Example:
        >>> common_prefix_length([[1, 2, 3, 4], [1, 2, 5], [1, 2, 3]])
        2
        >>> common_prefix_length([[1, 2], [1, 2]])  # each keeps a token to pool on
        1
    """
    if not ids:
        return 0
    first = ids[0]
    n = min(len(row) for row in ids) - 1
    for row in ids[1:]:
        k = 0
        while k < n and row[k] == first[k]:
            k += 1
        n = k
    return max(n, 0)


def _cache_argument(decoder: Any) -> str:
    """The name the decoder's ``forward`` gives its key/value cache argument."""
    parameters = inspect.signature(decoder.forward).parameters
    return "cache" if "cache" in parameters else "past_key_values"


def _returned_cache(output: Any) -> Any:
    cache = getattr(output, "cache", None)
    if cache is None:
        cache = getattr(output, "past_key_values", None)
    if cache is None:
        raise RuntimeError("the decoder returned no key/value cache (use_cache=True ignored?)")
    return cache


def resolve_strategy(backbone: Backbone, strategy: str = "auto") -> str:
    """The strategy ``"auto"`` stands for with this backbone (other names are checked only).

    ``"packed"`` where the model's attention implementation takes a custom 4-D mask
    (``sdpa``, ``eager``), else ``"batched"``.

    Example:
        >>> from hybridrec.rerank.backbone import Backbone
        >>> resolve_strategy(Backbone.load("tiny-gpt2", "verbalizer"))
        'packed'
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; known: {', '.join(STRATEGIES)}")
    if strategy != "auto":
        return strategy
    attention = getattr(backbone.config, "_attn_implementation", None) or "eager"
    return "packed" if attention in {"sdpa", "eager"} else "batched"


def score_shared_ids(
    backbone: Backbone,
    ids: Sequence[Sequence[int]],
    *,
    max_batch_tokens: int = DEFAULT_MAX_BATCH_TOKENS,
    strategy: str = "auto",
) -> np.ndarray:
    """Scores of token-id sequences that share leading tokens, running those tokens once.

    Args:
        backbone: the scorer.
        ids: one full token-id sequence per candidate (as :meth:`Backbone.encode` gives).
        max_batch_tokens: the key/value entries one forward pass holds: ``rows * (shared +
            longest suffix)`` for ``"batched"``, ``shared + suffix tokens`` for ``"packed"``
            (at most :data:`PACKED_MAX_TOKENS` suffix tokens a row).
        strategy: ``"packed"``, ``"batched"`` or ``"auto"`` (``"packed"`` where the model's
            attention implementation takes a custom 4-D mask, else ``"batched"``).

    Returns:
        float32 scores in the order of ``ids``, equal to ``backbone.score_ids(ids)``.

    Raises:
        ValueError: an empty sequence, one longer than the model takes, an unknown strategy.
    """
    how = resolve_strategy(backbone, strategy)
    if len(ids) == 0:
        return np.zeros(0, dtype=np.float32)
    backbone.check_lengths(ids)
    shared = common_prefix_length(ids)
    if shared == 0 or len(ids) == 1:
        return backbone.score_ids(ids, max_batch_tokens=max_batch_tokens, padding_side="right")
    rests = [list(row[shared:]) for row in ids]
    out = np.empty(len(ids), dtype=np.float32)
    with backbone.scoring():
        device = backbone.device
        prefix = torch.as_tensor([list(ids[0][:shared])], dtype=torch.long, device=device)
        cache = _returned_cache(
            backbone.decoder(
                input_ids=prefix,
                attention_mask=torch.ones_like(prefix),
                position_ids=torch.arange(shared, device=device)[None],
                use_cache=True,
            )
        )
        run = _run_packed if how == "packed" else _run_batched
        run(backbone, cache, shared, rests, max_batch_tokens, out)
    return out


def _run_batched(
    backbone: Backbone,
    cache: Any,
    shared: int,
    rests: list[list[int]],
    max_batch_tokens: int,
    out: np.ndarray,
) -> None:
    """Right-padded batches of suffixes on copies of the cache repeated along the batch."""
    decoder, device = backbone.decoder, backbone.device
    cache_arg = _cache_argument(decoder)
    batches = plan_batches(
        [len(r) for r in rests], max_batch_tokens=max_batch_tokens, fixed=shared
    )
    logger.debug("%d suffixes after %d shared tokens: %d batches", len(rests), shared, len(batches))
    for batch in batches:
        rows, width = len(batch), max(len(rests[i]) for i in batch)
        lengths = torch.as_tensor([len(rests[i]) for i in batch], device=device)
        input_ids = torch.full((rows, width), backbone.pad_token_id, dtype=torch.long)
        for row, i in enumerate(batch):
            input_ids[row, : len(rests[i])] = torch.as_tensor(rests[i], dtype=torch.long)
        suffix_mask = (torch.arange(width, device=device)[None] < lengths[:, None]).long()
        mask = torch.cat(
            [torch.ones((rows, shared), dtype=torch.long, device=device), suffix_mask], dim=1
        )
        positions = (shared + torch.arange(width, device=device))[None].expand(rows, -1)
        batch_cache = copy.deepcopy(cache)  # the update below must not grow the shared one
        batch_cache.batch_repeat_interleave(rows)
        hidden = decoder(
            input_ids=input_ids.to(device),
            attention_mask=mask,
            position_ids=positions,
            use_cache=True,
            **{cache_arg: batch_cache},
        )[0]
        pooled = hidden[torch.arange(rows, device=device), lengths - 1]
        out[batch] = backbone.head_scores(pooled).float().cpu().numpy()


def _packed_chunks(lengths: Sequence[int], budget: int) -> list[list[int]]:
    chunks: list[list[int]] = []
    total = 0
    for i, n in enumerate(lengths):
        if chunks and total + n <= budget:
            chunks[-1].append(i)
            total += n
        else:
            chunks.append([i])
            total = n
    return chunks


def _run_packed(
    backbone: Backbone,
    cache: Any,
    shared: int,
    rests: list[list[int]],
    max_batch_tokens: int,
    out: np.ndarray,
) -> None:
    """All suffixes in one row with a block-diagonal causal 4-D mask, on a copy of the cache."""
    decoder, device = backbone.decoder, backbone.device
    cache_arg = _cache_argument(decoder)
    dtype = backbone.model.dtype
    budget = max(1, min(max_batch_tokens - shared, PACKED_MAX_TOKENS))
    chunks = _packed_chunks([len(r) for r in rests], budget)
    logger.debug("%d suffixes after %d shared tokens: %d rows", len(rests), shared, len(chunks))
    for chunk in chunks:
        lengths = torch.as_tensor([len(rests[i]) for i in chunk], device=device)
        total = int(lengths.sum())
        tokens = torch.as_tensor([t for i in chunk for t in rests[i]], device=device)
        segment = torch.repeat_interleave(torch.arange(len(chunk), device=device), lengths)
        starts = torch.cumsum(lengths, 0) - lengths
        offset = torch.arange(total, device=device) - starts[segment]
        here = torch.arange(total, device=device)
        visible = (segment[:, None] == segment[None, :]) & (here[:, None] >= here[None, :])
        visible = torch.cat(
            [torch.ones((total, shared), dtype=torch.bool, device=device), visible], dim=1
        )
        mask = torch.zeros((1, 1, total, shared + total), dtype=dtype, device=device)
        mask.masked_fill_(~visible, torch.finfo(dtype).min)
        hidden = decoder(
            input_ids=tokens[None],
            attention_mask=mask,
            position_ids=(shared + offset)[None],
            use_cache=True,
            **{cache_arg: copy.deepcopy(cache)},
        )[0][0]
        pooled = hidden[starts + lengths - 1]
        out[chunk] = backbone.head_scores(pooled).float().cpu().numpy()


def score_shared_prefix(
    backbone: Backbone,
    prefix: str,
    suffixes: Sequence[str],
    *,
    max_batch_tokens: int = DEFAULT_MAX_BATCH_TOKENS,
    strategy: str = "auto",
) -> np.ndarray:
    """Scores of ``prefix + suffix`` for every suffix, running the shared prefix once.

    The result equals ``backbone.score_texts([prefix + s for s in suffixes])`` (the naive,
    full computation) up to float rounding, in a fraction of the time when the prefix is long.

    Args:
        backbone: the scorer (either head).
        prefix: what every prompt starts with: the template's head and the user's history.
        suffixes: one per candidate: the candidate's text and the rest of the template.
        max_batch_tokens: key/value entries per forward pass (see :func:`score_shared_ids`).
        strategy: ``"auto"``, ``"packed"`` or ``"batched"`` (see the module's notes).

    Returns:
        float32 scores, one per suffix, in order.

    Raises:
        TypeError: a prefix or suffix that is not a string.
        ValueError: a prompt longer than the model takes, or with no tokens at all.

    Example:
        >>> from hybridrec.rerank.backbone import Backbone
        >>> bb = Backbone.load("tiny-gpt2", "classifier", seed=0)
        >>> score_shared_prefix(bb, "Liked: Heat (1995).\\n", ["Up?", "Alien (1979)?"]).shape
        (2,)
    """
    if not isinstance(prefix, str):
        raise TypeError(f"prefix is a {type(prefix).__name__}, not a str")
    texts = []
    for i, suffix in enumerate(suffixes):
        if not isinstance(suffix, str):
            raise TypeError(f"suffix {i} is a {type(suffix).__name__}, not a str")
        texts.append(prefix + suffix)
    return score_shared_ids(
        backbone, backbone.encode(texts), max_batch_tokens=max_batch_tokens, strategy=strategy
    )


def score_requests(
    backbone: Backbone,
    requests: Iterable[tuple[str, Sequence[str]]],
    *,
    max_batch_tokens: int = DEFAULT_MAX_BATCH_TOKENS,
    strategy: str = "auto",
) -> list[np.ndarray]:
    """:func:`score_shared_prefix` for many users: one ``(prefix, suffixes)`` pair each.

    Returns:
        One float32 array per request, in order.

    Example:
        >>> from hybridrec.rerank.backbone import Backbone
        >>> bb = Backbone.load("tiny-gpt2", "verbalizer")
        >>> out = score_requests(bb, [("Liked: Heat.\\n", ["Up?", "Big?"]), ("Liked: Up.\\n", [])])
        >>> [a.shape for a in out]
        [(2,), (0,)]
    """
    return [
        score_shared_prefix(
            backbone, prefix, suffixes, max_batch_tokens=max_batch_tokens, strategy=strategy
        )
        for prefix, suffixes in requests
    ]
