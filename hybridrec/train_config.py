"""``hybridrec train-reranker CONFIG``: fine-tune the language-model reranker from a TOML file.

The config names a dataset, an output folder and the reranker's settings
(:class:`~hybridrec.rerank.lm.LMReranker`'s constructor arguments, with its training, prompt
and sample-builder settings as nested tables). Every key is checked before anything slow
happens; all the problems of a config are reported at once, one line each, naming the key
(``reranker.training.learning_rate``, ...), as a :class:`~hybridrec.eval.config.ConfigError`
(a ``ValueError``). Unknown keys are refused at every level.

Keys (relative paths are relative to the current folder, as everywhere in the command line).
Every ``[reranker]`` key is optional: what is left out takes LMReranker's default (and, in the
nested tables, :data:`~hybridrec.rerank.lm.DEFAULT_TRAINING`, then TrainingConfig's defaults;
:data:`~hybridrec.rerank.lm.DEFAULT_PROMPT`, then PromptConfig's); ``--dry-run`` prints the
resolved settings. The values below are examples::

    dataset = "ml-latest-small"   # required unless --dataset is given: a dataset name
                                  # (ml-latest-small, ml-100k, ml-1m, amazon2018:<Category>),
                                  # a folder or file path, or a table:
    # [dataset]                   #   path = "ratings.csv" (or name = "ml-1m"), plus any option
    #                             #   of hybridrec.load_dataset: format, sep, columns, items,
    #                             #   item_columns, list_columns, like_threshold, lenient, ...
    out = "models/lm-reranker"    # output folder (--out overrides; one of the two is required)

    [reranker]                    # LMReranker's constructor arguments:
    model = "smollm2-135m"        # decoder: smollm2-135m (offline, pretrained), gpt2, a hub id,
                                  # a local folder, tiny-gpt2 (tiny, random: tests and demos)
    head = "verbalizer"           # verbalizer (" Yes" - " No") or classifier (new linear head)
    task = "ranking"              # ranking (next item vs hard negatives) or rating (TALLRec)
    shots = 256                   # at most this many training examples
    candidates = "popularity"     # the recommender drawing the ranking task's negatives
    item_text = "title"           # text, title, or a list of catalogue columns
    valid_frac = 0.2              # share of users held out for validation (early stopping)
    valid_examples = 200          # at most this many validation examples
    train = true                  # false: no fine-tuning (zero-shot, with the verbalizer head)
    seed = 0
    device = "cpu"                # cpu, cuda, ...; left out: CUDA when available

    [reranker.training]           # hybridrec.rerank.training.TrainingConfig fields:
    strategy = "lora"             # full, top, lora, adalora, ia3
    learning_rate = 5e-4          # also: top_n, lora_r, lora_alpha, lora_dropout,
    num_train_epochs = 2          # target_modules, adalora_*, weight_decay, warmup_ratio,
    batch_size = 8                # eval_batch_size, gradient_accumulation_steps,
    early_stopping_patience = 2   # max_grad_norm, seed, mixed_precision, ddp_backend, progress

    [reranker.prompt]             # hybridrec.rerank.prompt.PromptConfig fields:
    history_items = 10            # also: history_tokens, candidate_tokens, item_chars,
                                  # show_ratings, show_popularity, show_mean_rating,
                                  # show_genres, show_profile, template

    [reranker.samples]            # keyword arguments of the example builder: for the ranking
    min_history = 5               # task negatives_per_positive, n_candidates, min_history,
                                  # max_targets_per_user, liked_only, anonymous, ties, seed;
                                  # for the rating task min_history, ties

A config file whose name ends in ``.json`` is read as JSON with the same keys; any other is
read as TOML.

Example:
    >>> cfg = TrainRerankerConfig.from_dict(
    ...     {"dataset": "ml-latest-small", "reranker": {"shots": 16, "task": "rating"}})
    >>> cfg.make_reranker().get_params()["shots"]
    16
    >>> TrainRerankerConfig.from_dict({"dataset": "x", "reranker": {"shot": 16}})
    ... # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    hybridrec.eval.config.ConfigError: invalid train-reranker config: reranker.shot: unknown \
key; known: model, head, task, shots, ...
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, create_model

from hybridrec.eval.config import ConfigError, _check_dataset, dataset_label

WHAT = "train-reranker config"
#: the reranker's registry name
RERANKER = "lm"
#: nested tables of ``[reranker]``
_NESTED_TABLES = ("training", "prompt", "samples")


def _dataset_or_none(value: Any) -> Any:
    return None if value is None else _check_dataset(value)


class _TrainModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    dataset: Annotated[Any, AfterValidator(_dataset_or_none)] = None
    out: Annotated[str, Field(strict=True, min_length=1)] | None = None
    reranker: dict[Annotated[str, Field(strict=True)], Any] = Field(default_factory=dict)


def reranker_class() -> type:
    """The class registered as the ``lm`` reranker
    (:class:`~hybridrec.rerank.lm.LMReranker`)."""
    from hybridrec.registry import get_reranker

    return get_reranker(RERANKER)


def _reranker_model(cls: type) -> type[BaseModel]:
    """A pydantic model of the reranker's constructor arguments: unknown keys refused, the
    nested tables must be tables; the values are checked by the reranker itself."""
    fields: dict[str, Any] = {}
    for name, p in inspect.signature(cls.__init__).parameters.items():
        if name == "self" or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        kind: Any = dict[Annotated[str, Field(strict=True)], Any] | None
        fields[name] = (kind if name in _NESTED_TABLES else Any, None)
    return create_model(  # type: ignore[call-overload,no-any-return]
        "_RerankerModel", __config__=ConfigDict(extra="forbid"), **fields
    )


def _prefixed(err: ConfigError, prefix: str) -> list[str]:
    return [f"{prefix}.{p}" for p in err.problems]


def _check_reranker(cls: type, params: dict[str, Any]) -> list[str]:
    """The problems of the ``[reranker]`` table, each naming its key (empty: none)."""
    from hybridrec.eval.config import _validate

    model = _reranker_model(cls)
    problems: list[str] = []
    try:
        _validate(model, params, WHAT)
    except ConfigError as err:  # unknown keys, a nested table that is not a table
        problems += _prefixed(err, "reranker")
        params = {  # the rest is checked still
            k: v
            for k, v in params.items()
            if k in model.model_fields
            and (k not in _NESTED_TABLES or v is None or isinstance(v, Mapping))
        }
    params = {k: dict(v) if isinstance(v, Mapping) else v for k, v in params.items()}
    problems += _check_samples(params)  # unknown keys; their values by the construction below
    problems += _construction_problems(cls, params)
    candidates = params.get("candidates")
    if params.get("task", "ranking") == "ranking" and candidates is not None:
        from hybridrec.errors import HybridrecError
        from hybridrec.registry import get

        try:
            get(candidates)
        except (HybridrecError, TypeError) as err:
            problems.append(f"reranker.candidates: {err}")
    return problems


def _try(cls: type, kwargs: dict[str, Any], where: str) -> list[str]:
    """The problems of ``cls(**kwargs)``: the reranker's ConfigError each with its key, else
    its TypeError/ValueError attributed to ``where``."""
    try:
        cls(**kwargs)
    except ConfigError as err:  # the reranker's settings, each naming its key
        return _prefixed(err, "reranker")
    except (TypeError, ValueError) as err:
        return [f"{where}: {err}"]
    return []


def _construction_problems(cls: type, params: dict[str, Any]) -> list[str]:
    """Construct the reranker (its own checks); name the key behind each error: every key (and
    prompt key) that fails on its own, the others at their defaults, else the table as a whole
    (a combination of keys)."""
    whole = _try(cls, params, "reranker")
    if not whole:
        return []
    keyed: list[str] = []
    head = {"head": params["head"]} if "head" in params else {}
    if head and _try(cls, head, "reranker.head"):
        head = {}  # reported on its own; the prompt keys are tried with the default head
    for key, value in params.items():
        if key == "prompt" and value:
            for name, v in value.items():
                keyed += _try(cls, {**head, "prompt": {name: v}}, f"reranker.prompt.{name}")
        else:
            keyed += _try(cls, {key: value}, f"reranker.{key}")
    return list(dict.fromkeys(keyed)) or whole


def _check_samples(params: dict[str, Any]) -> list[str]:
    """Unknown ``samples`` keys, each named; they are dropped from ``params``."""
    samples = params.get("samples")
    task = params.get("task", "ranking")
    if not samples or task not in ("ranking", "rating"):
        return []  # an unknown task: reported by the reranker itself
    from hybridrec.rerank.samples import sample_param_names

    known = sample_param_names(task)
    params["samples"] = {k: v for k, v in samples.items() if k in known}
    return [
        f"reranker.samples.{k}: unknown key for the {task} task; known: {', '.join(known)}"
        for k in samples
        if k not in known
    ]


# --------------------------------------------------------------------------- the config
@dataclass(frozen=True)
class TrainRerankerConfig:
    """A ``train-reranker`` config: see the module's docstring for the keys.

    Attributes:
        dataset: a dataset name or path, or a mapping of a ``path`` (or ``name``) and
            :func:`~hybridrec.load_dataset` options; None when the command line gives it.
        out: the output folder, or None when the command line gives it.
        reranker: the reranker's constructor arguments, checked by constructing it.
        source: the file the config came from, if any.
    """

    dataset: str | dict[str, Any] | None = None
    out: str | None = None
    reranker: dict[str, Any] = field(default_factory=dict)
    source: Path | None = None

    @classmethod
    def from_dict(cls, data: Any, source: Path | None = None) -> TrainRerankerConfig:
        """Check a plain mapping (as read from TOML) and build the config.

        Raises:
            ConfigError: every problem found, one line each, naming its key.
        """
        from hybridrec.eval.config import _validate

        problems: list[str] = []
        checked = None
        try:
            checked = _validate(_TrainModel, data, WHAT)
        except ConfigError as err:
            problems += err.problems
        reranker = data.get("reranker", {}) if isinstance(data, Mapping) else None
        if isinstance(reranker, Mapping) and all(isinstance(k, str) for k in reranker):
            problems += _check_reranker(reranker_class(), dict(reranker))
        if problems or checked is None:
            raise ConfigError(problems, what=WHAT, source=source)
        return cls(checked.dataset, checked.out, dict(checked.reranker), source)

    @classmethod
    def from_file(cls, path: str | Path) -> TrainRerankerConfig:
        """Read a TOML (or, named ``*.json``, JSON) config in UTF-8.

        Raises:
            ConfigError: the file is missing, a folder, unreadable, not UTF-8, not valid TOML
                (the message names the line and column) or the config has problems; the
                message starts with the file's path.
        """
        path = Path(path)
        return cls.from_dict(_read(path), source=path)

    def make_reranker(self) -> Any:
        """The unfitted reranker these settings describe."""
        from hybridrec.registry import create_reranker

        return create_reranker(RERANKER, **self.reranker)


def _read(path: Path) -> Any:
    def fail(problem: str) -> ConfigError:
        return ConfigError([problem], what=WHAT, source=path)

    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise fail("no such file") from None
    except IsADirectoryError:
        raise fail("is a folder, not a config file") from None
    except OSError as err:
        raise fail(f"cannot read the file ({err.strerror or err})") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw.count(b"\n", 0, err.start) + 1
        raise fail(f"the file is not UTF-8 text (byte 0x{raw[err.start]:02x} on line {line}); "
                   "save it as UTF-8") from None  # fmt: skip
    if path.suffix.lower() == ".json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as err:
            raise fail(f"not valid JSON ({err})") from None
    import tomllib

    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise fail(f"not valid TOML ({err})") from None


# --------------------------------------------------------------------------- the run
@dataclass
class TrainSummary:
    """What :func:`train_reranker` did.

    Attributes:
        out: the output folder (absolute).
        dataset: the dataset's label and size.
        params: the reranker's parameters.
        training / prompt: the effective training and prompt settings (defaults filled in).
        dry_run: nothing was trained or written.
        replaces: the output folder holds a saved model that is replaced.
        steps, epochs, best_auc, best_epoch: from the training (None without it).
        seconds: wall-clock seconds of the fit.
    """

    out: Path
    dataset: str
    params: dict[str, Any]
    training: dict[str, Any]
    prompt: dict[str, Any]
    dry_run: bool = False
    replaces: bool = False
    steps: int | None = None
    epochs: int | None = None
    best_auc: float | None = None
    best_epoch: float | None = None
    seconds: float = 0.0

    def lines(self) -> list[str]:
        """The summary the command line prints."""
        if self.dry_run:
            where = "replaces the saved model there" if self.replaces else "new folder"
            return [
                f"dataset   {self.dataset}",
                f"out       {self.out} ({where})",
                f"reranker  {RERANKER} {json.dumps(self.params, default=str)}",
                f"training  {json.dumps(self.training, default=str)}",
                f"prompt    {json.dumps(self.prompt, default=str)}",
                "dry run: config, dataset and output folder are fine; nothing trained or written",
            ]
        p = self.params
        what = f"{RERANKER} reranker ({p.get('model')}, {p.get('head')} head, {p.get('task')} task)"
        if self.steps is None:
            done = f"fitted {what} without training (train = false)"
        else:
            done = f"trained {what}: {self.steps} steps, {self.epochs} epoch(s)"
            if self.best_auc is not None:
                done += f", best validation AUC {self.best_auc:.4f} at epoch {self.best_epoch:g}"
        return [f"{done}, {self.seconds:.1f} s", f"saved to {self.out}"]


def train_reranker(
    config: TrainRerankerConfig,
    *,
    out: str | Path | None = None,
    dataset: str | None = None,
    load_options: Mapping[str, Any] | None = None,
    overwrite: bool = False,
    dry_run: bool = False,
    log: Callable[[str], None] | None = None,
) -> TrainSummary:
    """Check the output folder, load the dataset, fit the reranker and save it.

    Args:
        config: the checked config.
        out: the output folder, over the config's ``out``.
        dataset: a dataset name or path, over the config's ``dataset``.
        load_options: :func:`~hybridrec.load_dataset` options, over those of the config's
            dataset table.
        overwrite: replace a saved model in the output folder (as ``hybridrec fit``: a file,
            a non-empty folder hybridrec did not write or the current folder never are).
        dry_run: stop before fitting: nothing is trained or written.
        log: called with a progress line before the fit.

    Raises:
        ConfigError: no dataset or output folder given, or dataset options the loader refuses.
        OutputPathError: the output folder cannot be written (checked before the fit).
        DataError, ...: the dataset cannot be loaded; errors of the fit itself.
    """
    from hybridrec.data import load_dataset
    from hybridrec.persistence import check_output_dir, is_model_folder

    source = config.source
    target = out if out is not None else config.out
    missing = []
    if target is None:
        missing.append("out: required (in the config, or --out)")
    entry: str | dict[str, Any] | None = dataset if dataset is not None else config.dataset
    if entry is None:
        missing.append("dataset: required (in the config, or --dataset)")
    if missing:
        raise ConfigError(missing, what=WHAT, source=source)
    assert target is not None and entry is not None
    reranker = config.make_reranker()  # checked already: cheap, no model loaded
    target = check_output_dir(target, overwrite=overwrite)  # before the long work
    replaces = target.is_dir() and is_model_folder(target)
    if isinstance(entry, str):
        path, options = entry, {}
    else:
        options = {k: v for k, v in entry.items() if k != "label"}
        path = options.pop("path") if "path" in options else options.pop("name")
    options.update(load_options or {})
    label = dataset_label(entry)
    try:
        data = load_dataset(path, **options)
    except TypeError as err:
        raise ConfigError([f"dataset ({label!r}): {err}"], what=WHAT, source=source) from err
    summary = TrainSummary(
        out=target,
        dataset=f"{label} ({data.n_users:,} users, {data.n_items:,} items, "
        f"{len(data.interactions):,} interactions)",
        params=reranker.get_params(),
        training=reranker.training_config().model_dump(),
        prompt=dataclasses.asdict(reranker.prompt_config()),
        dry_run=dry_run,
        replaces=replaces,
    )
    if dry_run:
        return summary
    if log is not None:
        log(f"fitting the {RERANKER} reranker on {summary.dataset} ...")
    start = time.perf_counter()
    reranker.fit(data)
    summary.seconds = time.perf_counter() - start
    result = reranker.result_
    if result is not None:
        summary.steps, summary.epochs = result.steps, len(result.history)
        summary.best_auc, summary.best_epoch = result.best_auc, result.best_epoch
    summary.out = reranker.save(target, overwrite=overwrite)
    return summary
