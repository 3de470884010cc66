"""Benchmark configuration: what to run, read from a JSON or TOML file or built in code.

:class:`BenchConfig` and :class:`RecommenderSpec` are frozen dataclasses; every value is checked
when one is made (by :meth:`BenchConfig.from_dict`, :meth:`BenchConfig.from_file` or the
constructor) against pydantic models of the same fields: types (no silent ``"5"`` -> ``5``,
no booleans as numbers), ranges and unknown keys. All the problems of a config are reported at
once, one line each, naming the key (``users``, ``recommenders[1].params``, ...), as a
:class:`ConfigError`, which is a ``ValueError``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import MISSING, asdict, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator as After
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from hybridrec.errors import HybridrecError

PROTOCOLS = ("full-ranking", "sampled", "pairwise-auc", "cold-start")


class ConfigError(HybridrecError, ValueError):
    """A benchmark config with one or more problems, each naming its key.

    Attributes:
        problems: one line per problem, ``"<key>: <what is wrong> (got <value>)"``.
        source: the file the config came from, when it came from one.
    """

    def __init__(
        self, problems: list[str], what: str = "benchmark config", source: object = None
    ) -> None:
        self.problems, self.what, self.source = list(problems), what, source
        super().__init__(self._message())

    def __reduce__(self) -> tuple[Any, ...]:  # picklable (e.g. across worker processes)
        return (type(self), (self.problems, self.what, self.source))

    def _message(self) -> str:
        where = f"{self.source}: " if self.source is not None else ""
        if len(self.problems) == 1:
            return f"{where}invalid {self.what}: {self.problems[0]}"
        lines = [f"{where}invalid {self.what} ({len(self.problems)} problems):"]
        return "\n".join([*lines, *(f"  {p}" for p in self.problems)])

    def with_source(self, source: object) -> ConfigError:
        """The same problems, attributed to a file."""
        return ConfigError(self.problems, what=self.what, source=source)


# --------------------------------------------------------------------------- value checks
def _as_tuple(value: Any) -> Any:
    """A list becomes a tuple; a single value (``"ml-1m"``, ``10``) a tuple of one."""
    if isinstance(value, list | tuple):
        return tuple(value)
    if isinstance(value, str | int | float | Mapping) or is_dataclass(value):
        return (value,)
    return value  # None and other odd values: refused by the tuple type, with their type named


def _check_protocol(name: str) -> str:
    if name not in PROTOCOLS:
        raise ValueError(f"unknown protocol {name!r}; known: {', '.join(PROTOCOLS)}")
    return name


def _check_dataset(value: Any) -> Any:
    """A dataset is a name or path (string), or a mapping with a ``path`` or ``name`` string
    (and optionally a ``label`` string and a ``k_core`` integer >= 1)."""
    if isinstance(value, str):
        if not value.strip():
            raise ValueError("a dataset name or path must not be empty")
        return value
    if isinstance(value, Mapping):
        keys = [k for k in ("path", "name") if k in value]
        if not keys:
            raise ValueError(
                f"a dataset given as a mapping needs a 'path' or a 'name' key; it has "
                f"{sorted(map(str, value)) or 'no keys'}"
            )
        for key in [*keys, *(["label"] if "label" in value else [])]:
            if not isinstance(value[key], str) or not value[key].strip():
                raise ValueError(f"the dataset's {key!r} must be a non-empty string")
        if "k_core" in value:
            k = value["k_core"]
            if isinstance(k, bool) or not isinstance(k, int) or k < 1:
                raise ValueError(f"the dataset's 'k_core' must be an integer >= 1 (got {k!r})")
        return dict(value)
    raise ValueError(
        f"a dataset must be a name or path (string) or a mapping with 'path' or 'name', "
        f"not {type(value).__name__}"
    )


def dataset_label(dataset: str | Mapping[str, Any]) -> str:
    """A dataset's name in results: the string as given, or a mapping's ``label``, else its
    path's file name, else its ``name``; with a ``k_core``, ``-{k}core`` appended (the name
    :meth:`~hybridrec.data.dataset.Dataset.k_core` gives).

    Example:
        >>> dataset_label({"path": "data/user_artists.dat", "format": "tsv"})
        'user_artists.dat'
        >>> dataset_label({"name": "ml-latest-small", "k_core": 5})
        'ml-latest-small-5core'
    """
    if isinstance(dataset, str):
        return dataset
    if dataset.get("label"):
        return str(dataset["label"])
    if dataset.get("path"):
        base = Path(str(dataset["path"])).expanduser().name or str(dataset["path"])
    else:
        base = str(dataset["name"])
    k = dataset.get("k_core")
    return base if k is None else f"{base}-{k}core"


def dataset_k_core(dataset: str | Mapping[str, Any]) -> int | None:
    """The ``k_core`` of a dataset entry (None for a string or a mapping without one).

    Example:
        >>> dataset_k_core({"name": "ml-latest-small", "k_core": 5}), dataset_k_core("ml-1m")
        (5, None)
    """
    if isinstance(dataset, str):
        return None
    k = dataset.get("k_core")
    return None if k is None else int(k)


def _unique(values: tuple[Any, ...]) -> tuple[Any, ...]:
    dupes = sorted({v for v in values if values.count(v) > 1}, key=str)
    if dupes:
        raise ValueError(f"duplicate value(s) {', '.join(map(repr, dupes))}")
    return values


def _spec_input(value: Any) -> Any:
    """A recommender given as its registry name, a mapping or a :class:`RecommenderSpec`."""
    if isinstance(value, str):
        return {"name": value}
    if isinstance(value, RecommenderSpec):
        return {f.name: getattr(value, f.name) for f in fields(value)}
    if not isinstance(value, Mapping):
        raise ValueError(
            "a recommender is a registry name or a mapping with 'name' and optionally "
            f"'params' and 'label', not {type(value).__name__}"
        )
    return value


_Name = Annotated[str, Field(strict=True, min_length=1)]
_PositiveInt = Annotated[int, Field(strict=True, ge=1)]
_NonNegativeInt = Annotated[int, Field(strict=True, ge=0)]


# tuples: a single value or a list is accepted as input; at least one value
_AsTuple, _NotEmpty = BeforeValidator(_as_tuple), Field(min_length=1)
_Datasets = Annotated[tuple[Annotated[Any, After(_check_dataset)], ...], _AsTuple, _NotEmpty]
_Protocols = Annotated[
    tuple[Annotated[_Name, After(_check_protocol)], ...], _AsTuple, _NotEmpty, After(_unique)
]
_Specs = Annotated[
    tuple[Annotated["_SpecModel", BeforeValidator(_spec_input)], ...], _AsTuple, _NotEmpty
]
_Cutoffs = Annotated[tuple[_PositiveInt, ...], _AsTuple, _NotEmpty, After(_unique)]
_Seeds = Annotated[tuple[_NonNegativeInt, ...], _AsTuple, _NotEmpty, After(_unique)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _SpecModel(_Strict):
    name: _Name
    params: dict[Annotated[str, Field(strict=True)], Any] = Field(default_factory=dict)
    label: Annotated[str, Field(strict=True)] = ""


class _BenchModel(_Strict):
    datasets: _Datasets
    protocols: _Protocols
    recommenders: _Specs
    k: _Cutoffs
    seeds: _Seeds
    users: _PositiveInt | None
    negatives: _PositiveInt
    history_len: _PositiveInt
    pairs_per_user: _PositiveInt
    cold_start_frac: Annotated[float, Field(strict=True, gt=0, lt=1)]
    baseline: _Name
    bootstrap: _NonNegativeInt
    latency_requests: _NonNegativeInt
    latency_warmup: _NonNegativeInt
    latency_batch: _PositiveInt


def _validate(model: type[_Strict], data: Any, what: str) -> Any:
    """``model.model_validate(data)``, with pydantic's errors turned into a :class:`ConfigError`."""
    if not isinstance(data, Mapping):
        raise ConfigError(
            [f"the config must be a mapping of keys to values, not {type(data).__name__}"],
            what=what,
        )
    try:
        return model.model_validate(dict(data))
    except ValidationError as err:
        raise ConfigError([_problem(e, model) for e in err.errors()], what=what) from None


def _problem(error: Any, model: type[_Strict]) -> str:
    """One line for one pydantic error: the key, what is wrong and the value given."""
    loc = ""
    for part in error["loc"]:
        loc += f"[{part}]" if isinstance(part, int) else (f".{part}" if loc else str(part))
    kind = error["type"]
    if kind == "extra_forbidden":
        owner = model  # the model holding the unknown key: follow the nested fields
        for part in error["loc"][:-1]:
            owner = _NESTED.get(part, owner) if isinstance(part, str) else owner
        label = "benchmark config key" if owner is _BenchModel else "key"
        return f"{loc}: unknown {label}; known: {', '.join(owner.model_fields)}"
    if kind == "missing":
        return f"{loc}: required"
    if kind == "value_error":
        message = str(error["ctx"]["error"])
    else:
        message = error["msg"][:1].lower() + error["msg"][1:]
    shown = repr(error.get("input"))
    if shown in message:  # the message names the value already
        return f"{loc}: {message}"
    return f"{loc}: {message} (got {shown if len(shown) <= 60 else shown[:57] + '...'})"


_NESTED: dict[str, type[_Strict]] = {"recommenders": _SpecModel}


# --------------------------------------------------------------------------- the config
@dataclass(frozen=True)
class RecommenderSpec:
    """One recommender in a benchmark: registry name, parameters and the label in tables.

    Attributes:
        name: registry name (``"all"`` in a :class:`BenchConfig` means every registered one
            but the language-model stages, which are named with their training settings).
        params: keyword arguments of the recommender.
        label: its name in tables and results (default: ``name``); unique within a config.

    Example:
        >>> RecommenderSpec("ease", {"l2": 500.0}).label
        'ease'
    """

    name: str
    params: dict[str, Any] = field(default_factory=dict)
    label: str = ""

    def __post_init__(self) -> None:
        checked = _validate(
            _SpecModel,
            {f.name: getattr(self, f.name) for f in fields(self)},
            f"recommender spec {self.name!r}",
        )
        object.__setattr__(self, "params", dict(checked.params))
        object.__setattr__(self, "label", checked.label or checked.name)


@dataclass(frozen=True)
class BenchConfig:
    """A benchmark run.

    Attributes:
        datasets: datasets, each a name or path (see :func:`hybridrec.load_dataset`) or a
            mapping with a ``path`` or ``name`` key, an optional ``label`` (its name in results;
            default: the path's file name, or the name) and options of
            :func:`~hybridrec.load_dataset` (``format``, ``sep``, ``columns``, ``items``, ...;
            kept as given, checked when the dataset is loaded). ``k_core`` (an integer >= 1,
            checked here) evaluates on the dataset's k-core
            (:meth:`~hybridrec.data.dataset.Dataset.k_core`): e.g. ``{"name":
            "ml-latest-small", "k_core": 5}``, labelled ``ml-latest-small-5core``.
        protocols: any of ``full-ranking`` (leave-one-out, ranked against every item),
            ``sampled`` (1 positive + ``negatives`` sampled negatives, uniform and
            popularity-matched), ``pairwise-auc`` (TALLRec-style (history, candidate) pairs with
            the rating baselines) and ``cold-start`` (users held out entirely).
        recommenders: what to compare; ``["all"]`` means every registered recommender but the
            language-model stages (``rerank``: name it, with its settings). Each is
            a :class:`RecommenderSpec`, a registry name or a mapping of its fields.
        k: cut-offs for the ranking metrics (positive, distinct).
        seeds: one run per seed (user sample, negatives, random recommender, cold-start users).
        users: evaluate a random sample of this many test users (None = all).
        negatives: negatives per positive in the sampled protocol (>= 1).
        history_len: history length in the pairwise-auc protocol (>= 1).
        pairs_per_user: at most this many (latest) pairs per user in the pairwise-auc protocol.
        cold_start_frac: share of users held out in the cold-start protocol, in (0, 1).
        baseline: label of the recommender the others are tested against.
        bootstrap: bootstrap resamples for confidence intervals (0 = none).
        latency_requests: one-at-a-time requests timed per recommender (after warm-up).
        latency_warmup: untimed warm-up requests.
        latency_batch: users per batch in the batched throughput measurement (>= 1).

    Every value is checked when a config is made; a bad one raises :class:`ConfigError`
    naming the key. Lists are stored as tuples.

    Example:
        >>> BenchConfig(datasets=["ml-latest-small"], recommenders=[RecommenderSpec("ease")]).k
        (10, 20)
        >>> BenchConfig.from_dict({"users": "abc", "bootstrap": -5})
        Traceback (most recent call last):
        ...
        hybridrec.eval.config.ConfigError: invalid benchmark config (2 problems):
          users: input should be a valid integer (got 'abc')
          bootstrap: input should be greater than or equal to 0 (got -5)
    """

    datasets: tuple[str | dict[str, Any], ...] = ("ml-latest-small",)
    protocols: tuple[str, ...] = ("full-ranking", "sampled", "pairwise-auc", "cold-start")
    recommenders: tuple[RecommenderSpec, ...] = (RecommenderSpec("all"),)
    k: tuple[int, ...] = (10, 20)
    seeds: tuple[int, ...] = (0,)
    users: int | None = None
    negatives: int = 19
    history_len: int = 10
    pairs_per_user: int = 10
    cold_start_frac: float = 0.1
    baseline: str = "popularity"
    bootstrap: int = 1000
    latency_requests: int = 200
    latency_warmup: int = 10
    latency_batch: int = 64

    def __post_init__(self) -> None:
        checked = _validate(
            _BenchModel, {f.name: getattr(self, f.name) for f in fields(self)}, "benchmark config"
        )
        for name, value in _fields_of(checked).items():
            object.__setattr__(self, name, value)
        names = [dataset_label(d) for d in self.datasets]
        if len(set(names)) != len(names):
            dupes = sorted({n for n in names if names.count(n) > 1})
            raise ConfigError(
                [
                    f"datasets: labels must be unique; {', '.join(map(repr, dupes))} repeated "
                    "(give each a distinct 'label')"
                ]
            )
        labels = [r.label for r in self.recommenders]
        if len(set(labels)) != len(labels):
            dupes = sorted({label for label in labels if labels.count(label) > 1})
            raise ConfigError(
                [
                    f"recommenders: labels must be unique; {', '.join(map(repr, dupes))} repeated "
                    "(give each a distinct 'label')"
                ]
            )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BenchConfig:
        """Build from a plain mapping (as read from JSON or TOML); recommenders may be names.

        Keys left out take the defaults; unknown keys are refused.

        Raises:
            ConfigError: every problem found, one line each, naming its key.
        """
        if not isinstance(data, Mapping):
            raise ConfigError(
                [f"the config must be a mapping of keys to values, not {type(data).__name__}"]
            )
        checked = _validate(_BenchModel, {**_defaults(cls), **data}, "benchmark config")
        return cls(**_fields_of(checked))

    @classmethod
    def from_file(cls, path: str | Path) -> BenchConfig:
        """Read a ``.toml`` or (any other suffix) ``.json`` benchmark config, in UTF-8 (a
        byte-order mark is accepted).

        Raises:
            ConfigError: the file cannot be read (missing, a folder, no permission), is not
                UTF-8 text, is not valid JSON/TOML, or the config has problems; the message
                starts with the file's path.
        """
        path = Path(path)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            raise ConfigError(["no such file"], source=path) from None
        except IsADirectoryError:
            raise ConfigError(["is a folder, not a config file"], source=path) from None
        except OSError as err:
            raise ConfigError(
                [f"cannot read the file ({err.strerror or err})"], source=path
            ) from None
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as err:
            line = raw.count(b"\n", 0, err.start) + 1
            column = err.start - (raw.rfind(b"\n", 0, err.start) + 1) + 1
            raise ConfigError(
                [
                    f"the file is not UTF-8 text (byte 0x{raw[err.start]:02x} on line {line}, "
                    f"column {column}); save it as UTF-8"
                ],
                source=path,
            ) from None
        if path.suffix == ".toml":
            try:
                import tomllib
            except ModuleNotFoundError:  # Python 3.10
                import tomli as tomllib  # type: ignore[no-redef]
            try:
                data = tomllib.loads(text)
            except tomllib.TOMLDecodeError as err:
                raise ConfigError([f"not valid TOML ({err})"], source=path) from None
        else:
            try:
                data = json.loads(text)
            except json.JSONDecodeError as err:
                raise ConfigError([f"not valid JSON ({err})"], source=path) from None
        try:
            return cls.from_dict(data)
        except ConfigError as err:
            raise err.with_source(path) from None

    @classmethod
    def quick(cls) -> BenchConfig:
        """The small run used by the demo and CI: 200 users, one seed, the fast protocols."""
        return cls(
            protocols=("full-ranking", "sampled", "pairwise-auc", "cold-start"),
            k=(10,),
            users=200,
            bootstrap=1000,
            latency_requests=50,
            latency_warmup=5,
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain values (recommenders as mappings), as :meth:`from_dict` reads."""
        return asdict(self)

    def with_recommenders(self, specs: tuple[RecommenderSpec, ...]) -> BenchConfig:
        """This config with other recommenders."""
        data = self.to_dict()
        data["recommenders"] = [asdict(s) for s in specs]
        return BenchConfig.from_dict(data)


def _defaults(cls: type[BenchConfig]) -> dict[str, Any]:
    out = {}
    for f in fields(cls):
        if f.default is not MISSING:
            out[f.name] = f.default
        elif f.default_factory is not MISSING:
            out[f.name] = f.default_factory()
    return out


def _fields_of(checked: _BenchModel) -> dict[str, Any]:
    """Dataclass field values from a validated model: specs as :class:`RecommenderSpec`."""
    values = {name: getattr(checked, name) for name in type(checked).model_fields}
    values["recommenders"] = tuple(
        RecommenderSpec(s.name, dict(s.params), s.label) for s in checked.recommenders
    )
    return values
