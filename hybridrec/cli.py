"""The ``hybridrec`` command line. Heavy libraries are imported inside commands, so ``--help``
stays fast.

JSON outputs (``--json``) and their keys:

* ``recommenders --json``: a list of ``{"name", "kind", "target", "source"}``; ``kind`` is
  ``recommender`` or ``reranker``, ``source`` is ``builtin`` or ``plugin:<distribution>``.
* ``data info --json``: ``name, users, active_users, items, rated_items, interactions, density,
  explicit, like_threshold, liked_share, rating_histogram ({rating: count}), timestamps (false
  when the data has no time column: row order stands in for time), first_timestamp,
  last_timestamp (null without timestamps), item_columns, user_profile_columns,
  skipped_rows`` (malformed rows skipped in lenient mode) and ``load_notes`` (the loader's
  counts: ``rows_read``, ``repeated_pairs_dropped`` and format-specific ones).
* ``recommend --json``: ``{"user", "recommender", "items": [{"rank", "item_id", "score",
  "stage", "title", "notes", "explanation"}]}`` (``notes``: request inputs the recommender
  ignored, and how a stage answered, such as a fallback; ``explanation``: a generated reason,
  or null, e.g. ``prompt`` with ``explain=True``).
* ``bench --json``: the ``results.json`` document (see docs in ``hybridrec.eval.bench``).
"""

from __future__ import annotations

import functools
import json
import logging
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click


def _parse_params(pairs: tuple[str, ...], param_hint: str = "--param") -> dict[str, Any]:
    params: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected KEY=VALUE, got {pair!r}", param_hint=param_hint)
        try:
            params[key] = json.loads(value)
        except json.JSONDecodeError:
            params[key] = value
    return params


def _fail(err: Exception) -> None:
    raise click.ClickException(str(err)) from err


# --------------------------------------------------------------------------- dataset options
_SEPARATORS = {
    "tab": "\t",
    "\\t": "\t",
    "comma": ",",
    "semicolon": ";",
    "pipe": "|",
    "space": " ",
}


def _separator(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    sep = _SEPARATORS.get(value.lower(), value)
    if len(sep) != 1:
        raise click.BadParameter(
            f"expected one character, or tab / '\\t' / comma / semicolon / pipe / space; "
            f"got {value!r}"
        )
    return sep


def _mapping(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> dict:
    """``ROLE=COLUMN`` values (repeated, or comma-separated in one value) as a dict."""
    out: dict[str, str] = {}
    for value in values:
        for pair in value.split(","):
            role, eq, column = (part.strip() for part in pair.partition("="))
            if not eq or not role or not column:
                raise click.BadParameter(f"expected ROLE=COLUMN, got {pair!r}")
            if out.get(role, column) != column:
                raise click.BadParameter(f"{role!r} mapped twice ({out[role]!r}, {column!r})")
            out[role] = column
    return out


def _list_columns(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> dict:
    out: dict[str, str] = {}
    for value in values:
        column, eq, sep = value.partition("=")
        if not eq or not column.strip() or not sep:
            raise click.BadParameter(f"expected COLUMN=SEPARATOR (e.g. genres='|'), got {value!r}")
        out[column.strip()] = sep
    return out


_DATASET_OPTIONS = (
    click.option(
        "--format",
        "fmt",
        metavar="FORMAT",
        help="Format of a path, instead of detecting it from its name or content: csv, tsv "
        "(csv split on tabs, for any file name such as .dat or .txt), jsonl, ml-latest, "
        "ml-100k, ml-1m, amazon2018.",
    ),
    click.option(
        "--sep",
        callback=_separator,
        metavar="CHAR",
        help="Field separator of a csv file: one character, or 'tab' (or '\\t'). Default: "
        "comma; tab for .tsv files and --format tsv.",
    ),
    click.option(
        "--column",
        "columns",
        multiple=True,
        callback=_mapping,
        metavar="ROLE=COLUMN",
        help="Which column of a csv/jsonl file holds a role: user_id, item_id, rating, "
        "timestamp (Unix seconds). Repeatable, or comma-separated. A role left out is read "
        "from a column of its own name when there is one; without a rating the feedback is "
        "implicit, without a timestamp the row order stands in for time.",
    ),
    click.option("--encoding", metavar="NAME", help="Text encoding of csv files (default utf-8)."),
    click.option(
        "--items",
        type=click.Path(exists=True, dir_okay=False),
        help="A catalogue file beside a csv/jsonl interactions file: item_id plus titles, "
        "descriptions, genres... Its format comes from --items-format, else from its name "
        "(.csv, .tsv, .jsonl; a csv one split with the interactions file's separator).",
    ),
    click.option(
        "--items-format",
        type=click.Choice(["csv", "tsv", "jsonl"]),
        help="Format of --items, for any file name: csv (commas), tsv (tabs), jsonl.",
    ),
    click.option(
        "--item-column",
        "item_columns",
        multiple=True,
        callback=_mapping,
        metavar="ROLE=COLUMN",
        help="Columns of --items: item_id, title, description, ... (as --column).",
    ),
    click.option(
        "--profiles",
        type=click.Path(exists=True, dir_okay=False),
        help="A user profile file beside a csv/jsonl interactions file (read as --items).",
    ),
    click.option(
        "--profiles-format",
        type=click.Choice(["csv", "tsv", "jsonl"]),
        help="Format of --profiles, as --items-format.",
    ),
    click.option(
        "--profile-column",
        "profile_columns",
        multiple=True,
        callback=_mapping,
        metavar="ROLE=COLUMN",
        help="Columns of --profiles: user_id and other fields (as --column).",
    ),
    click.option(
        "--list-column",
        "list_columns",
        multiple=True,
        callback=_list_columns,
        metavar="COLUMN=SEP",
        help="A catalogue or profile column holding a list in one string, with its separator, "
        "e.g. genres='|'. Repeatable.",
    ),
    click.option(
        "--like-threshold",
        type=float,
        help="Ratings at or above it count as liked (default 4). Unrated (implicit) "
        "interactions always count as liked.",
    ),
    click.option(
        "--lenient", is_flag=True, help="Skip malformed rows (counted) instead of failing."
    ),
)

#: command-line option -> keyword of :func:`hybridrec.load_dataset`
_LOAD_KEYWORDS = {
    "fmt": ("format", "--format"),
    "sep": ("sep", "--sep"),
    "columns": ("columns", "--column"),
    "encoding": ("encoding", "--encoding"),
    "items": ("items", "--items"),
    "item_columns": ("item_columns", "--item-column"),
    "items_format": ("items_format", "--items-format"),
    "profiles": ("users", "--profiles"),
    "profile_columns": ("user_columns", "--profile-column"),
    "profiles_format": ("users_format", "--profiles-format"),
    "list_columns": ("list_columns", "--list-column"),
    "like_threshold": ("like_threshold", "--like-threshold"),
    "lenient": ("lenient", "--lenient"),
}


def dataset_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Add the dataset loading options to a command; it gets them as ``load_options``, the
    keyword arguments of :func:`hybridrec.load_dataset` that were given (plain JSON values)."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        given = {name: kwargs.pop(name) for name in _LOAD_KEYWORDS}
        if given["item_columns"] and not given["items"]:
            raise click.UsageError("--item-column needs --items")
        if given["profile_columns"] and not given["profiles"]:
            raise click.UsageError("--profile-column needs --profiles")
        if given["items_format"] and not given["items"]:
            raise click.UsageError("--items-format needs --items")
        if given["profiles_format"] and not given["profiles"]:
            raise click.UsageError("--profiles-format needs --profiles")
        kwargs["load_options"] = {
            _LOAD_KEYWORDS[name][0]: value
            for name, value in given.items()
            if value not in (None, False, {})
        }
        return command(*args, **kwargs)

    for option in reversed(_DATASET_OPTIONS):
        wrapper = option(wrapper)
    return wrapper


def _load(name_or_path: str, load_options: dict[str, Any]):
    """``load_dataset`` with the command line's options; an option the dataset's format does
    not take is a clean error naming the command-line flags."""
    from hybridrec.data import load_dataset

    try:
        return load_dataset(name_or_path, **load_options)
    except TypeError as err:
        flags = [flag for keyword, flag in _LOAD_KEYWORDS.values() if keyword in load_options]
        raise click.UsageError(
            f"{name_or_path}: {err} (given on the command line as {', '.join(flags)})"
        ) from err


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="hybridrec")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
def main(verbose: int) -> None:
    """Hybrid recommendation with language models.

    Today: baselines, embedding retrieval (FAISS), a fine-tuned language-model reranker (GPT-2
    family or SmolLM2, offline) and the rerank stage, behind one interface, and a benchmark
    harness. The zero-shot cold-start prompt path is in development.
    """
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")


@main.command("recommenders")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def recommenders_cmd(as_json: bool) -> None:
    """List registered recommenders and rerankers, and where they come from."""
    from hybridrec.registry import RegistryError, entries

    rows = []
    try:
        for kind in ("recommender", "reranker"):
            for e in entries(kind).values():
                rows.append({"name": e.name, "kind": kind, "target": e.target, "source": e.source})
    except RegistryError as err:
        _fail(err)
    rows.sort(key=lambda r: (r["kind"], r["name"]))
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    width = max(len(r["name"]) for r in rows)
    source_width = max(len(r["source"]) for r in rows)
    for r in rows:
        click.echo(
            f"{r['name']:<{width}}  {r['kind']:<11}  {r['source']:<{source_width}}  {r['target']}"
        )


@main.group("data")
def data_group() -> None:
    """Inspect datasets."""


@data_group.command("info")
@click.argument("name_or_path")
@dataset_options
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def data_info(name_or_path: str, load_options: dict[str, Any], as_json: bool) -> None:
    """Users, items, interactions, density and rating histogram of a dataset.

    NAME_OR_PATH is a dataset name (ml-latest-small, ml-100k, ml-1m, amazon2018:<Category>) or
    a folder or file. A tab-separated file with its own column names, such as HetRec Last.fm's
    user_artists.dat (its weight column, a play count, is left unmapped: implicit feedback):

    \b
        hybridrec data info user_artists.dat --format tsv \\
            --column user_id=userID --column item_id=artistID
    """
    from hybridrec.errors import HybridrecError

    try:
        ds = _load(name_or_path, load_options)
    except (HybridrecError, OSError, ValueError) as err:
        _fail(err)
    info = ds.info()
    info["skipped_rows"] = ds.skipped_rows
    info["load_notes"] = dict(ds.load_notes)
    if as_json:
        click.echo(json.dumps(info, indent=2))
        return
    click.echo(f"dataset       {info['name']}")
    click.echo(f"users         {info['users']:,} ({info['active_users']:,} with interactions)")
    click.echo(f"items         {info['items']:,} ({info['rated_items']:,} with interactions)")
    click.echo(f"interactions  {info['interactions']:,}")
    click.echo(f"density       {info['density']:.4%}")
    click.echo(f"liked share   {info['liked_share']:.1%} (rating >= {info['like_threshold']:g})")
    if not info["timestamps"]:
        click.echo(
            "time          no timestamps: row order stands in for time; leave-one-out and "
            "temporal splits hold out at random"
        )
    elif info["first_timestamp"] is not None:
        first, last = _day(info["first_timestamp"]), _day(info["last_timestamp"])
        click.echo(f"time          {first} to {last}")
    notes = ", ".join(f"{k.replace('_', ' ')} {v:,}" for k, v in info["load_notes"].items())
    if notes:
        click.echo(f"loading       {notes}")
    if info["skipped_rows"]:
        click.echo(f"skipped       {info['skipped_rows']:,} malformed rows (lenient)")
    if info["rating_histogram"]:
        top = max(info["rating_histogram"].values())
        click.echo("ratings")
        for rating, count in info["rating_histogram"].items():
            bar = "#" * max(1, round(40 * count / top))
            click.echo(f"  {rating:>4}  {count:>8,}  {bar}")


def _day(seconds: int) -> str:
    """A Unix time as a UTC date, or the number itself when it is not a plausible date."""
    import datetime as dt

    try:
        return dt.datetime.fromtimestamp(seconds, dt.timezone.utc).strftime("%Y-%m-%d")
    except (OverflowError, OSError, ValueError):
        return str(seconds)


def _load_or_fit(
    model: str | None,
    dataset: str,
    recommender: str,
    params: dict[str, Any],
    load_options: dict[str, Any],
):
    from hybridrec.registry import create, load

    ds = _load(dataset, load_options)
    if model:
        return load(model), ds
    return create(recommender, **params).fit(ds), ds


@main.command("fit")
@click.option(
    "--dataset",
    default="ml-latest-small",
    show_default=True,
    help="Dataset name or path (see 'hybridrec data info --help').",
)
@dataset_options
@click.option("--recommender", "-r", default="popularity", show_default=True)
@click.option("--param", "-p", multiple=True, help="Recommender parameter KEY=VALUE (JSON value).")
@click.option(
    "--out",
    required=True,
    type=click.Path(path_type=Path),
    help="Model folder: new, empty, or (with --overwrite) a saved model.",
)
@click.option(
    "--overwrite", is_flag=True, help="Replace a model already saved in the --out folder."
)
def fit_cmd(
    dataset: str,
    load_options: dict[str, Any],
    recommender: str,
    param: tuple[str, ...],
    out: Path,
    overwrite: bool,
) -> None:
    """Fit a recommender on a whole dataset and save it to a folder.

    The folder is checked before fitting: a file, a non-empty folder that holds no saved
    model, or the current folder is never replaced; a saved model only with --overwrite.
    """
    from hybridrec.errors import HybridrecError
    from hybridrec.persistence import check_output_dir

    try:
        check_output_dir(out, overwrite=overwrite)  # before the long work
        rec, _ = _load_or_fit(None, dataset, recommender, _parse_params(param), load_options)
        rec.save(out, overwrite=overwrite)
    except (HybridrecError, OSError, ValueError, TypeError) as err:
        _fail(err)
    click.echo(f"saved {recommender} fitted on {dataset} to {out}")


@main.command("recommend")
@click.option(
    "--dataset",
    default=None,
    help="Dataset name or path to fit on and read titles from (default ml-latest-small). With "
    "--model: left out, the titles saved with the model are shown; given, it must be the "
    "catalogue the model was fitted on.",
)
@dataset_options
@click.option("--recommender", "-r", default="popularity", show_default=True)
@click.option("--param", "-p", multiple=True, help="Recommender parameter KEY=VALUE (JSON value).")
@click.option(
    "--model",
    type=click.Path(exists=True, file_okay=False),
    help="Use a saved model folder instead of fitting.",
)
@click.option("--user", "-u", help="A known user id.")
@click.option("--history", help="Comma-separated item ids, oldest first (an anonymous user).")
@click.option("--text", help="The user's own words about what they like.")
@click.option(
    "--profile",
    multiple=True,
    metavar="KEY=VALUE",
    help="A user profile attribute (JSON value), e.g. age=25 or gender=F; repeatable.",
)
@click.option(
    "--candidates",
    metavar="ID,ID,...",
    help="Comma-separated item ids: rank only these (needed for a saved reranker).",
)
@click.option(
    "--include-seen",
    is_flag=True,
    help="Also rank items already in the user's history (left out by default).",
)
@click.option(
    "--on-unused",
    type=click.Choice(["warn", "raise", "ignore"]),
    default="warn",
    show_default=True,
    help="When the request carries input (--text, --profile) the recommender does not read: "
    "warn prints a note, raise fails, ignore says nothing.",
)
@click.option("-k", default=10, show_default=True, type=click.IntRange(min=1))
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def recommend_cmd(
    ctx: click.Context,
    dataset: str,
    load_options: dict[str, Any],
    recommender: str,
    param: tuple[str, ...],
    model: str | None,
    user: str | None,
    history: str | None,
    text: str | None,
    profile: tuple[str, ...],
    candidates: str | None,
    include_seen: bool,
    on_unused: str,
    k: int,
    as_json: bool,
) -> None:
    """Recommend items for a known user, a history of item ids, or free text.

    With --model, the saved model answers: -r/--param are refused (they choose what to fit).
    A saved reranker ranks given items only: pass --candidates. Items the user already has are
    left out, given candidates too, unless --include-seen.
    """
    from hybridrec.errors import HybridrecError
    from hybridrec.reranker import Reranker
    from hybridrec.types import Interaction, UserContext

    if user is None and history is None and text is None and not profile:
        raise click.UsageError("give --user, --history, --text or --profile")
    if model and dataset is None and load_options:
        raise click.UsageError("dataset options need --dataset")
    if model:
        given = ctx.get_parameter_source("recommender") not in (
            click.core.ParameterSource.DEFAULT,
            click.core.ParameterSource.DEFAULT_MAP,
        )
        if given or param:
            raise click.UsageError(
                "-r/--recommender and -p/--param choose what to fit; --model uses a saved "
                "model as it is: give one or the other"
            )
    profile_values = _parse_params(profile, param_hint="--profile")
    cand_ids = None
    if candidates is not None:
        cand_ids = list(dict.fromkeys(c.strip() for c in candidates.split(",") if c.strip()))
        if not cand_ids:
            raise click.BadParameter("give at least one item id", param_hint="--candidates")
    try:
        if model and dataset is None:
            from hybridrec.registry import load

            rec, ds = load(model), None
        else:
            rec, ds = _load_or_fit(
                model, dataset or "ml-latest-small", recommender, _parse_params(param), load_options
            )
            if model:
                rec.check_catalogue(ds)
        if isinstance(rec, Reranker) and cand_ids is None:
            raise click.UsageError(
                f"{model or recommender} is a reranker ({rec.name}): it ranks given items only. "
                "Pass --candidates ID,ID,..., or put it behind a candidate source: "
                f"-r two-stage -p reranker={rec.name}"
            )
        if history is not None or text is not None or profile_values:
            hist = tuple(Interaction(i.strip()) for i in (history or "").split(",") if i.strip())
            target: Any = UserContext(user, hist, text, profile_values)
        else:
            target = user
        # "warn" is reported below from Recommendation.notes, not as a Python warning
        recs = rec.recommend(
            target,
            k=k,
            exclude_seen=not include_seen,
            candidates=cand_ids,
            on_unused="ignore" if on_unused == "warn" else on_unused,
        )
    except (HybridrecError, OSError, ValueError, TypeError) as err:
        _fail(err)
    titles = None
    if ds is not None and "title" in ds.items.columns:
        titles = ds.items.set_index("item_id")["title"]

    def title(item_id: str) -> str:
        if ds is None:
            return rec.item_title(item_id)
        if titles is None or item_id not in titles.index:
            return ""
        value = titles.loc[item_id]
        return "" if not isinstance(value, str) else value

    if not recs and cand_ids is not None and not include_seen:
        click.echo(
            "note: no recommendation: every candidate is already in the user's history "
            "(pass --include-seen to rank them anyway)",
            err=True,
        )
    if as_json:
        items = [
            {
                "rank": r.rank,
                "item_id": r.item_id,
                "score": r.score,
                "stage": r.stage,
                "title": title(r.item_id),
                "notes": list(r.notes),
                "explanation": r.explanation,
            }
            for r in recs
        ]
        click.echo(json.dumps({"user": user, "recommender": rec.name, "items": items}, indent=2))
        return
    if on_unused == "warn":
        for note in dict.fromkeys(n for r in recs for n in r.notes):
            click.echo(f"note: {note}", err=True)
    if recs and all(r.stage == "fallback:popularity" for r in recs):
        click.echo(
            f"note: {rec.name} had nothing it can read in this request, so it answered with the "
            "most popular items (its documented fallback)",
            err=True,
        )
    for r in recs:
        click.echo(f"{r.rank:>3}. {r.item_id:<12} {r.score:>10.4f}  {title(r.item_id)}")
        if r.explanation:
            click.echo(f"     why: {r.explanation}")


@main.command("train-reranker")
@click.argument("config", type=click.Path(path_type=Path))
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    help="Model folder, over the config's 'out': new, empty, or (with --overwrite) a saved "
    "model. Checked before training.",
)
@click.option("--dataset", help="Dataset name or path, over the config's 'dataset'.")
@dataset_options
@click.option(
    "--overwrite", is_flag=True, help="Replace a model already saved in the output folder."
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Check the config, load the dataset, check the output folder and print the resolved "
    "settings; train and write nothing.",
)
def train_reranker_cmd(
    config: Path,
    out: Path | None,
    dataset: str | None,
    load_options: dict[str, Any],
    overwrite: bool,
    dry_run: bool,
) -> None:
    """Fine-tune the language-model reranker (lm) as a TOML CONFIG says, and save it.

    Every key is checked before training (unknown keys refused, each problem named by its
    key); the output folder is checked as 'hybridrec fit' checks it. The keys (every
    [reranker] key is optional, default LMReranker's; --dry-run prints the resolved settings;
    details in 'pydoc hybridrec.train_config'):

    \b
        dataset = "ml-latest-small"  # name or path; or a [dataset] table:
                                     #   path (or name) + load_dataset options
        out = "models/lm-reranker"   # output folder (or --out)
        [reranker]                   # model, head, task, shots, candidates,
                                     # item_text, valid_frac, valid_examples,
                                     # train, seed, device
        [reranker.training]          # strategy, learning_rate, num_train_epochs,
                                     # batch_size, lora_r, ... (TrainingConfig)
        [reranker.prompt]            # history_items, history_tokens, show_*,
                                     # template, ... (PromptConfig)
        [reranker.samples]           # min_history, negatives_per_positive,
                                     # n_candidates, ... (the example builder)

    The saved folder loads with hybridrec.load(folder) and ranks given items with
    'hybridrec recommend --model FOLDER --user ID --candidates ID,ID,...'.

    The dataset options below apply to the dataset given by --dataset or the config.
    """
    from hybridrec.errors import HybridrecError
    from hybridrec.train_config import TrainRerankerConfig, train_reranker

    try:
        cfg = TrainRerankerConfig.from_file(config)
        summary = train_reranker(
            cfg,
            out=out,
            dataset=dataset,
            load_options=load_options,
            overwrite=overwrite,
            dry_run=dry_run,
            log=lambda line: click.echo(line, err=True),
        )
    except (HybridrecError, OSError, ValueError, TypeError) as err:
        _fail(err)
    for line in summary.lines():
        click.echo(line)


_BENCH_FILES = frozenset({"results.json", "results.md", "per_user.npz"})
_OS_JUNK = frozenset({".DS_Store", "Thumbs.db", "desktop.ini"})
_RESULTS_KEYS = ("schema_version", "rows", "config", "environment")
# the names hybridrec.eval.report.write_plots gives its figures: accuracy_vs_latency.png and
# metrics_<protocol>.png, with _<dataset>_seed<n> before .png when a run has several
_PLOT_NAME = re.compile(r"(?:accuracy_vs_latency|metrics_[^_/\\]+)(?:_[^_/\\]+_seed\d+)?\.png")
_EMBEDDED_PLOT = re.compile(r"!\[([^\]\[/\\]+)\]\(\1\)")


def _plain_file(path: Path) -> bool:
    return path.is_file() and not path.is_symlink()


def _starts_with(path: Path, prefix: bytes) -> bool:
    try:
        with open(path, "rb") as fh:
            return fh.read(len(prefix)) == prefix
    except OSError:
        return False


def _earlier_results(folder: Path) -> dict[str, Any] | None:
    """The ``results.json`` document of an earlier benchmark run in ``folder``, or None.

    Recognised strictly, so that a folder of the user's that happens to hold a file of that
    name is not taken for the benchmark's: ``results.json`` is a JSON object with the keys
    this harness writes (schema_version, rows, config, environment), ``results.md`` (if
    there) starts with ``# hybridrec benchmark`` and ``per_user.npz`` (if there) is a zip.
    """
    path = folder / "results.json"
    if not _plain_file(path):
        return None
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    if not isinstance(doc, dict) or not all(key in doc for key in _RESULTS_KEYS):
        return None
    for name, head in (("results.md", b"# hybridrec benchmark"), ("per_user.npz", b"PK")):
        other = folder / name
        if (other.exists() or other.is_symlink()) and not (
            _plain_file(other) and _starts_with(other, head)
        ):
            return None
    return doc


def _bench_file(path: Path) -> bool:
    """A file a benchmark run writes (or one a file browser drops into any folder)."""
    if not _plain_file(path):
        return False
    name = path.name
    return name in _BENCH_FILES or name in _OS_JUNK or bool(_PLOT_NAME.fullmatch(name))


def _check_bench_out(out: Path) -> dict[Path, tuple[int, int, int]]:
    """Check, before the run, that the benchmark can write its results into ``out``.

    A new folder, an empty one, or one that holds nothing but an earlier run's output
    (results.json, results.md, per_user.npz and plots named as the report names them; see
    :func:`_earlier_results` for how strictly it is recognised) is fine: the earlier output is
    replaced. A file, or a folder with anything else, is refused (see
    :func:`hybridrec.persistence.check_output_dir`), and so is a folder we may not write in.

    Returns:
        The earlier run's plots that this run may remove if it does not redraw them: only
        those the earlier ``results.json`` lists under ``plots`` (so written by that run),
        named as the report names plots and not changed since that run, with what identifies
        their current content (inode, modification time, size).
    """
    from hybridrec.errors import OutputPathError
    from hybridrec.persistence import check_output_dir

    target = check_output_dir(
        out, overwrite=True, ours=lambda p: _earlier_results(p) is not None
    )
    if not target.is_dir():
        return {}
    foreign = [p.name for p in sorted(target.iterdir()) if not _bench_file(p)]
    if foreign:
        more = f" and {len(foreign) - 5} more" if len(foreign) > 5 else ""
        shown = ", ".join(foreign[:5]) + more
        raise OutputPathError(
            f"{target}: holds an earlier benchmark's results but also {shown}; the benchmark "
            f"replaces a folder only when it holds nothing but its own output (results.json, "
            f"results.md, per_user.npz and its plots, accuracy_vs_latency*.png and "
            f"metrics_*.png): move those away or choose another --out"
        )
    if not os.access(target, os.W_OK | os.X_OK):
        raise OutputPathError(f"{target}: no permission to write in this folder")
    doc = _earlier_results(target) or {}
    listed = doc.get("plots")
    if not isinstance(listed, list):
        return {}  # output of a version that did not record its plots: none is removed
    finished = (target / "results.json").stat().st_mtime_ns  # written after the plots
    removable = {}
    for name in listed:
        if not isinstance(name, str) or not _PLOT_NAME.fullmatch(name):
            continue
        plot = target / name
        if not _plain_file(plot):
            continue
        st = plot.stat()
        if st.st_mtime_ns <= finished:
            removable[plot] = (st.st_ino, st.st_mtime_ns, st.st_size)
    return removable


def _record_plots(out: Path, results: dict[str, Any]) -> list[str]:
    """Add the plots this run wrote (those results.md embeds) to ``results.json`` under
    ``plots``: a later run into the same folder removes only plots listed there."""
    from hybridrec.persistence import atomic_write_text

    try:
        markdown = (out / "results.md").read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        markdown = ""
    plots = list(
        dict.fromkeys(
            name
            for name in _EMBEDDED_PLOT.findall(markdown)
            if _PLOT_NAME.fullmatch(name) and _plain_file(out / name)
        )
    )
    results["plots"] = plots
    path = out / "results.json"
    doc = json.loads(path.read_text(encoding="utf-8"))
    doc["plots"] = plots
    atomic_write_text(path, json.dumps(doc, indent=2, allow_nan=False) + "\n")
    return plots


def _remove_stale_plots(
    out: Path, earlier: dict[Path, tuple[int, int, int]], plots: list[str]
) -> list[str]:
    """Remove the earlier run's plots this run did not redraw, if nobody changed them since
    the check before the run; returns the names of plot-named files that remain although
    this run did not draw them (not recorded as the benchmark's, so kept)."""
    drawn = set(plots)
    for plot, before in earlier.items():
        if plot.name in drawn or not _plain_file(plot):
            continue
        st = plot.stat()
        if (st.st_ino, st.st_mtime_ns, st.st_size) == before:
            plot.unlink()
    return sorted(
        p.name
        for p in out.iterdir()
        if _PLOT_NAME.fullmatch(p.name) and p.name not in drawn and _plain_file(p)
    )


@main.command("bench")
@click.argument("config", required=False, type=click.Path(exists=True, dir_okay=False))
@click.option("--quick", is_flag=True, help="The small run for CI and the demo.")
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=Path("out/bench"),
    show_default=True,
    help="Folder for results.json, results.md, per_user.npz and plots: new, empty, or one "
    "holding only an earlier run's output (replaced). Checked before the run.",
)
@click.option(
    "--dataset",
    "datasets",
    multiple=True,
    help="Override the config's datasets: a name or path, repeatable. The dataset options "
    "below apply to every --dataset given.",
)
@dataset_options
@click.option(
    "--recommender",
    "-r",
    "recs",
    multiple=True,
    help="Override the config's recommenders (registry names).",
)
@click.option(
    "--users", type=click.IntRange(min=1), help="Evaluate a sample of this many users."
)
@click.option("--seed", "seeds", multiple=True, type=int, help="Override the seeds.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars.")
@click.option("--json", "as_json", is_flag=True, help="Print results.json instead of tables.")
def bench_cmd(
    config: str | None,
    quick: bool,
    out: Path,
    datasets: tuple[str, ...],
    load_options: dict[str, Any],
    recs: tuple[str, ...],
    users: int | None,
    seeds: tuple[int, ...],
    quiet: bool,
    as_json: bool,
) -> None:
    """Compare recommenders on accuracy, diversity and cost; write JSON, Markdown and plots.

    In a CONFIG file (JSON or TOML) a dataset is a name, a path, or a mapping of a "path" (or
    "name"), an optional "label" (its name in the results; default the file's name) and the
    options of hybridrec.load_dataset, e.g.

    \b
        {"path": "user_artists.dat", "format": "tsv",
         "columns": {"user_id": "userID", "item_id": "artistID"}}
    """
    from hybridrec.errors import HybridrecError
    from hybridrec.eval.bench import check_recommenders, run_benchmark
    from hybridrec.eval.config import BenchConfig
    from hybridrec.eval.report import console_summary, write_results

    if load_options and not datasets:
        raise click.UsageError(
            "the dataset options (--format, --sep, --column, ...) apply to --dataset: give "
            "--dataset too, or put them in the config's dataset entry"
        )
    try:
        earlier_plots = _check_bench_out(out)  # before the long work
        cfg = (
            BenchConfig.from_file(config)
            if config
            else (BenchConfig.quick() if quick else BenchConfig())
        )
        data = cfg.to_dict()
        if datasets:
            data["datasets"] = [
                {"path": d, **load_options} if load_options else d for d in datasets
            ]
        if recs:
            data["recommenders"] = list(recs)
        if users is not None:
            data["users"] = users
        if seeds:
            data["seeds"] = list(seeds)
        cfg = BenchConfig.from_dict(data)
        check_recommenders(cfg)  # an unknown name fails here, before any dataset is loaded
    except (HybridrecError, OSError, ValueError, TypeError) as err:
        _fail(err)
    progress = not quiet and sys.stderr.isatty()

    def on_row(row: dict[str, Any]) -> None:
        if row["status"] == "error":
            click.echo(
                f"! {row['recommender']} failed on {row['protocol']}: {row['error']}", err=True
            )

    try:
        results, arrays = run_benchmark(cfg, progress=progress, on_row=on_row)
    except (HybridrecError, OSError) as err:  # e.g. a dataset that cannot be loaded
        _fail(err)
    results["command"] = " ".join(["hybridrec", *sys.argv[1:]]) if sys.argv else None
    write_results(results, arrays, out)
    try:
        plots = _record_plots(out, results)
        kept = _remove_stale_plots(out, earlier_plots, plots)
    except (OSError, ValueError) as err:  # the results are written; say what was not done
        click.echo(f"note: could not record or tidy the plots in {out} ({err})", err=True)
    else:
        if kept:
            click.echo(
                f"note: {out} also holds plot(s) this run did not draw: {', '.join(kept[:5])}"
                f"{' ...' if len(kept) > 5 else ''} (not recorded as this benchmark's output, "
                "so kept; results.md embeds only this run's)",
                err=True,
            )
    if as_json:
        click.echo((out / "results.json").read_text(encoding="utf-8"))
    else:
        click.echo(console_summary(results))
        click.echo(f"full tables with 95% CIs and significance: {out}/results.md")
        click.echo(f"every number: {out}/results.json; per-user arrays: per_user.npz; plots: *.png")
    if all(r["status"] != "ok" for r in results["rows"]):
        if all(r["status"] == "skipped" for r in results["rows"]):
            click.echo("error: every protocol was skipped (reasons above); nothing was evaluated",
                       err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
