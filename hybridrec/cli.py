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
  "stage", "title", "notes"}]}`` (``notes``: request inputs the recommender ignored).
* ``bench --json``: the ``results.json`` document (see docs in ``hybridrec.eval.bench``).
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

import click


def _parse_params(pairs: tuple[str, ...]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected KEY=VALUE, got {pair!r}", param_hint="--param")
        try:
            params[key] = json.loads(value)
        except json.JSONDecodeError:
            params[key] = value
    return params


def _fail(err: Exception) -> None:
    raise click.ClickException(str(err)) from err


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="hybridrec")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
def main(verbose: int) -> None:
    """Hybrid recommendation with language models: retrieval, reranking, cold start."""
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
@click.option("--format", "fmt", default=None, help="Force a format instead of detecting it.")
@click.option("--lenient", is_flag=True, help="Skip malformed rows (counted) instead of failing.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def data_info(name_or_path: str, fmt: str | None, lenient: bool, as_json: bool) -> None:
    """Users, items, interactions, density and rating histogram of a dataset."""
    from hybridrec.data import load_dataset
    from hybridrec.errors import HybridrecError

    try:
        ds = load_dataset(name_or_path, format=fmt, lenient=lenient)
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


def _load_or_fit(model: str | None, dataset: str, recommender: str, params: dict[str, Any]):
    from hybridrec.data import load_dataset
    from hybridrec.registry import create, load

    ds = load_dataset(dataset)
    if model:
        return load(model), ds
    return create(recommender, **params).fit(ds), ds


@main.command("fit")
@click.option("--dataset", default="ml-latest-small", show_default=True)
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
    dataset: str, recommender: str, param: tuple[str, ...], out: Path, overwrite: bool
) -> None:
    """Fit a recommender on a whole dataset and save it to a folder.

    The folder is checked before fitting: a file, a non-empty folder that holds no saved
    model, or the current folder is never replaced; a saved model only with --overwrite.
    """
    from hybridrec.errors import HybridrecError
    from hybridrec.persistence import check_output_dir

    try:
        check_output_dir(out, overwrite=overwrite)  # before the long work
        rec, _ = _load_or_fit(None, dataset, recommender, _parse_params(param))
        rec.save(out, overwrite=overwrite)
    except (HybridrecError, OSError, ValueError, TypeError) as err:
        _fail(err)
    click.echo(f"saved {recommender} fitted on {dataset} to {out}")


@main.command("recommend")
@click.option(
    "--dataset",
    default="ml-latest-small",
    show_default=True,
    help="Dataset to fit on (and to read item titles from).",
)
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
@click.option("-k", default=10, show_default=True, type=click.IntRange(min=1))
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def recommend_cmd(
    dataset: str,
    recommender: str,
    param: tuple[str, ...],
    model: str | None,
    user: str | None,
    history: str | None,
    text: str | None,
    k: int,
    as_json: bool,
) -> None:
    """Recommend items for a known user, a history of item ids, or free text."""
    from hybridrec.errors import HybridrecError
    from hybridrec.types import Interaction, UserContext

    if user is None and history is None and text is None:
        raise click.UsageError("give --user, --history or --text")
    try:
        rec, ds = _load_or_fit(model, dataset, recommender, _parse_params(param))
        if history is not None or text is not None:
            hist = tuple(Interaction(i.strip()) for i in (history or "").split(",") if i.strip())
            target: Any = UserContext(user, hist, text)
        else:
            target = user
        recs = rec.recommend(target, k=k, on_unused="ignore")  # notes are printed below
    except (HybridrecError, OSError, ValueError, TypeError) as err:
        _fail(err)
    titles = ds.items.set_index("item_id")["title"] if "title" in ds.items.columns else None

    def title(item_id: str) -> str:
        if titles is None or item_id not in titles.index:
            return ""
        value = titles.loc[item_id]
        return "" if not isinstance(value, str) else value

    if as_json:
        items = [
            {
                "rank": r.rank,
                "item_id": r.item_id,
                "score": r.score,
                "stage": r.stage,
                "title": title(r.item_id),
                "notes": list(r.notes),
            }
            for r in recs
        ]
        click.echo(json.dumps({"user": user, "recommender": rec.name, "items": items}, indent=2))
        return
    for note in dict.fromkeys(n for r in recs for n in r.notes):
        click.echo(f"note: {note}; the answer does not use it", err=True)
    if recs and all(r.stage == "fallback:popularity" for r in recs):
        click.echo(
            f"note: {rec.name} had nothing it can read in this request, so it answered with the "
            "most popular items (its documented fallback)",
            err=True,
        )
    for r in recs:
        click.echo(f"{r.rank:>3}. {r.item_id:<12} {r.score:>10.4f}  {title(r.item_id)}")


@main.command("bench")
@click.argument("config", required=False, type=click.Path(exists=True, dir_okay=False))
@click.option("--quick", is_flag=True, help="The small run for CI and the demo.")
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=Path("out/bench"),
    show_default=True,
    help="Folder for results.json, results.md and plots.",
)
@click.option("--dataset", "datasets", multiple=True, help="Override the config's datasets.")
@click.option(
    "--recommender",
    "-r",
    "recs",
    multiple=True,
    help="Override the config's recommenders (registry names).",
)
@click.option("--users", type=int, help="Evaluate a sample of this many users.")
@click.option("--seed", "seeds", multiple=True, type=int, help="Override the seeds.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars.")
@click.option("--json", "as_json", is_flag=True, help="Print results.json instead of tables.")
def bench_cmd(
    config: str | None,
    quick: bool,
    out: Path,
    datasets: tuple[str, ...],
    recs: tuple[str, ...],
    users: int | None,
    seeds: tuple[int, ...],
    quiet: bool,
    as_json: bool,
) -> None:
    """Compare recommenders on accuracy, diversity and cost; write JSON, Markdown and plots."""
    from hybridrec.eval.bench import run_benchmark
    from hybridrec.eval.config import BenchConfig
    from hybridrec.eval.report import console_summary, write_results

    try:
        cfg = (
            BenchConfig.from_file(config)
            if config
            else (BenchConfig.quick() if quick else BenchConfig())
        )
        data = cfg.to_dict()
        if datasets:
            data["datasets"] = list(datasets)
        if recs:
            data["recommenders"] = list(recs)
        if users is not None:
            data["users"] = users
        if seeds:
            data["seeds"] = list(seeds)
        cfg = BenchConfig.from_dict(data)
    except (OSError, ValueError, TypeError) as err:
        _fail(err)
    progress = not quiet and sys.stderr.isatty()

    def on_row(row: dict[str, Any]) -> None:
        if row["status"] == "error":
            click.echo(
                f"! {row['recommender']} failed on {row['protocol']}: {row['error']}", err=True
            )

    from hybridrec.errors import HybridrecError

    try:
        results, arrays = run_benchmark(cfg, progress=progress, on_row=on_row)
    except (HybridrecError, OSError) as err:  # e.g. a dataset that cannot be loaded
        _fail(err)
    results["command"] = " ".join(["hybridrec", *sys.argv[1:]]) if sys.argv else None
    write_results(results, arrays, out)
    if as_json:
        click.echo((out / "results.json").read_text(encoding="utf-8"))
    else:
        click.echo(console_summary(results))
        click.echo(f"full tables with 95% CIs and significance: {out}/results.md")
        click.echo(f"every number: {out}/results.json; per-user arrays: per_user.npz; plots: *.png")
    if all(r["status"] != "ok" for r in results["rows"]):
        sys.exit(1)


if __name__ == "__main__":
    main()
