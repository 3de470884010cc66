"""EmbeddingRetriever on a tiny real-text catalogue, with the real all-MiniLM-L6-v2 model."""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import hybridrec as hr
from hybridrec.contract import RecommenderContract
from hybridrec.data.dataset import Dataset
from hybridrec.errors import DataError, ModelFileError, UnknownIdError
from hybridrec.persistence import MANIFEST, read_manifest, write_manifest
from hybridrec.retrieval.retriever import EmbeddingRetriever, popularity_bias, recency_weights
from hybridrec.types import Interaction, UserContext


@pytest.fixture(scope="module")
def fitted(movies: Dataset) -> EmbeddingRetriever:
    """Pure content similarity (no popularity prior), so the genre tests read plainly."""
    return EmbeddingRetriever(popularity_weight=0.0).fit(movies)


def genre(item_id: str) -> str:
    return item_id.rstrip("0123456789")


def test_registered_as_embedding() -> None:
    assert "embedding" in hr.available()
    assert isinstance(hr.create("embedding", index="hnsw"), EmbeddingRetriever)


def test_search_by_text_finds_the_right_genre(fitted: EmbeddingRetriever) -> None:
    recs = fitted.search("space adventure with astronauts and aliens", k=3)
    assert [genre(r.item_id) for r in recs] == ["scifi"] * 3
    assert recs[0].stage == "embedding" and recs[0].rank == 1
    assert recs[0].score > recs[1].score > recs[2].score > 0
    assert genre(fitted.search("scary ghosts and monsters", k=1)[0].item_id) == "horror"
    excluded = fitted.search("space adventure", k=3, exclude=[recs[0].item_id])
    assert recs[0].item_id not in {r.item_id for r in excluded}
    with pytest.raises(ValueError, match="empty"):
        fitted.search("  ", k=3)


def test_history_users_get_their_genre(fitted: EmbeddingRetriever, movies: Dataset) -> None:
    for g in ("scifi", "romance", "horror", "cooking"):
        recs = fitted.recommend(f"fan-{g}-0", k=2)
        assert [genre(r.item_id) for r in recs] == [g, g]


def test_free_text_user_and_mixing(fitted: EmbeddingRetriever, movies: Dataset) -> None:
    words = UserContext(preference_text="baking bread and French pastry")
    assert genre(fitted.recommend(words, k=1)[0].item_id) == "cooking"
    # a romance fan asking for space: text_weight 0.5 mixes, text_weight 1 is text only
    mixed = UserContext("fan-romance-0", preference_text="astronauts in outer space")
    top = [genre(r.item_id) for r in fitted.recommend(mixed, k=6)]
    assert {"scifi", "romance"} <= set(top)
    only_text = EmbeddingRetriever(text_weight=1.0, popularity_weight=0.0).fit(movies)
    words_only = only_text.recommend(UserContext(preference_text="astronauts in outer space"), k=9)
    seen = set(movies.history("fan-romance-0"))
    assert [r.item_id for r in only_text.recommend(mixed, k=5)] == [
        r.item_id for r in words_only if r.item_id not in seen
    ][:5]


@pytest.mark.parametrize("index", ["flat", "hnsw", "ivf-flat"])
def test_seen_items_are_never_returned(movies: Dataset, index: str) -> None:
    rec = EmbeddingRetriever(index=index).fit(movies)
    n = movies.n_items
    for user in movies.user_ids:
        seen = set(movies.history(user))
        recs = rec.recommend(user, k=n)
        got = [r.item_id for r in recs]
        assert not seen & set(got)
        assert len(got) == n - len(seen) == len(set(got))  # exact: every unseen item, once
    context = UserContext(history=tuple(Interaction(f"scifi{i}") for i in range(6)))
    recs = rec.recommend(context, k=n)
    assert len(recs) == n - 6 and not {r.item_id for r in recs} & {f"scifi{i}" for i in range(6)}
    codes, _ = rec.recommend_codes(np.arange(len(movies.user_ids)), k=n)
    seen_matrix = movies.matrix("binary").toarray() > 0
    for row, user_codes in enumerate(codes):
        assert not seen_matrix[row, user_codes[user_codes >= 0]].any()


def test_empty_history_and_no_text_falls_back_to_popularity(
    fitted: EmbeddingRetriever, movies: Dataset
) -> None:
    recs = fitted.recommend(UserContext(), k=5)
    popularity = fitted.popularity_
    expected = np.lexsort((np.arange(len(popularity)), -popularity))[:5]
    assert [r.item_id for r in recs] == [str(fitted.item_ids_[c]) for c in expected]
    assert [r.score for r in recs] == [float(popularity[c]) for c in expected]
    strict = EmbeddingRetriever(fallback="error").fit(movies)
    with pytest.raises(DataError, match="no history .*and no preference text"):
        strict.recommend(UserContext(), k=5)
    with pytest.raises(ValueError, match="fallback"):
        EmbeddingRetriever(fallback="random")


def test_unknown_ids_are_reported(fitted: EmbeddingRetriever) -> None:
    with pytest.raises(UnknownIdError, match="nobody"):
        fitted.recommend("nobody", k=3)
    with pytest.raises(UnknownIdError, match="'nope'.*'nada'"):
        fitted.recommend(UserContext(history=(Interaction("nope"), Interaction("nada"))), k=3)
    with pytest.raises(UnknownIdError, match="ghost"):
        fitted.recommend("drifter", k=3, candidates=["scifi1", "ghost"])
    with pytest.raises(UnknownIdError, match="ghost"):
        fitted.search("space", exclude=["ghost"])


def test_recency_weights_by_hand() -> None:
    # oldest first: liked (age 2), disliked (age 1), liked (age 0); half-life 1
    w = recency_weights(
        np.zeros(3, int), np.array([2, 1, 0]), np.array([True, False, True]),
        half_life=1.0, dislike_weight=0.5,
    )
    np.testing.assert_allclose(w, [0.25 / 1.25, -0.5, 1 / 1.25])
    flat = recency_weights(
        np.array([0, 0, 1]), np.array([1, 0, 0]), np.array([True, True, False]),
        half_life=None, dislike_weight=0.0,
    )
    np.testing.assert_allclose(flat, [0.5, 0.5, 1.0])  # user 1 liked nothing: all count


def test_recency_moves_the_user_vector(movies: Dataset) -> None:
    # the drifter watched sci-fi long ago and romance lately
    recent = EmbeddingRetriever(recency_half_life=1.0, popularity_weight=0.0).fit(movies)
    assert genre(recent.recommend("drifter", k=1)[0].item_id) == "romance"
    early = UserContext(history=tuple(Interaction(f"romance{i}") for i in range(4)) + tuple(
        Interaction(f"scifi{i}") for i in range(4)
    ))  # the same items in the other order: sci-fi is now recent
    assert genre(recent.recommend(early, k=1)[0].item_id) == "scifi"


def test_disliked_items_push_away(movies: Dataset) -> None:
    history = (
        Interaction("scifi0", 5.0), Interaction("horror0", 5.0), Interaction("horror1", 1.0),
        Interaction("horror2", 1.0), Interaction("horror3", 1.0),
    )
    user = UserContext(history=history)
    ignore = EmbeddingRetriever(dislike_weight=0.0, popularity_weight=0.0).fit(movies)
    push = EmbeddingRetriever(dislike_weight=1.0, popularity_weight=0.0).fit(movies)

    def horror_score(rec: EmbeddingRetriever) -> float:
        recs = rec.recommend(user, k=movies.n_items, candidates=["horror4", "horror5"])
        return max(r.score for r in recs)

    assert horror_score(push) < horror_score(ignore)
    # a context rating below the training like threshold counts as disliked
    assert push.like_threshold_ == 4.0
    # pairwise scoring (score / score_pairs) reads the same ratings as recommend
    pair = push.score(user, ["horror4", "horror5"])
    assert max(pair) == pytest.approx(horror_score(push), abs=1e-5)
    assert max(pair) < max(ignore.score(user, ["horror4", "horror5"]))


def test_candidates_are_scored_densely(fitted: EmbeddingRetriever) -> None:
    candidates = ["cooking0", "scifi5", "romance5", "horror5"]
    recs = fitted.recommend("fan-scifi-1", k=10, candidates=candidates)
    assert {r.item_id for r in recs} == set(candidates)
    assert recs[0].item_id == "scifi5"
    vector = fitted.user_vector("fan-scifi-1")
    codes = fitted._item_codes([r.item_id for r in recs])
    want = fitted.embeddings_[codes] @ vector
    np.testing.assert_allclose([r.score for r in recs], want, atol=1e-5)
    # and the FAISS path gives the same scores as the dense one
    top = fitted.recommend("fan-scifi-1", k=3)
    code = fitted._user_code("fan-scifi-1")
    dense = fitted._score_all(np.array([code]), fitted.seen_[[code]])[0]
    top_codes = fitted._item_codes([r.item_id for r in top])
    np.testing.assert_allclose([r.score for r in top], dense[top_codes], atol=1e-5)


def test_popularity_prior(movies: Dataset) -> None:
    np.testing.assert_allclose(popularity_bias(np.array([0, 1, 3, 0])), [0, 0.5, 1, 0])
    plain = EmbeddingRetriever(popularity_weight=0.0).fit(movies)
    prior = EmbeddingRetriever(popularity_weight=0.5).fit(movies)
    heavy = EmbeddingRetriever(popularity_weight=50.0).fit(movies)
    # a history user's scores are cosine + weight * bias, the same on the FAISS and dense paths
    user = "fan-cooking-2"
    vector = prior.user_vector(user)
    top = prior.recommend(user, k=5)
    codes = prior._item_codes([r.item_id for r in top])
    want = prior.embeddings_[codes] @ vector + 0.5 * prior.item_bias_[codes]
    np.testing.assert_allclose([r.score for r in top], want, atol=1e-5)
    code = prior._user_code(user)
    dense = prior._score_all(np.array([code]), prior.seen_[[code]])[0]
    np.testing.assert_allclose([r.score for r in top], dense[codes], atol=1e-5)
    # a heavy prior ranks by popularity among unseen items
    unseen = [c for c in np.argsort(-heavy.popularity_, kind="stable")
              if str(heavy.item_ids_[c]) not in set(movies.history(user))]
    assert heavy.recommend(user, k=1)[0].item_id == str(heavy.item_ids_[unseen[0]])
    # text search and text-only users are pure content similarity, whatever the weight
    assert heavy.search("sushi and noodles", k=4) == plain.search("sushi and noodles", k=4)
    words = UserContext(preference_text="haunted houses and ghosts")
    assert heavy.recommend(words, k=4) == plain.recommend(words, k=4)
    with pytest.raises(ValueError, match="popularity_weight"):
        EmbeddingRetriever(popularity_weight=-1)


def test_recommend_codes_equals_recommend(fitted: EmbeddingRetriever, movies: Dataset) -> None:
    codes, scores = fitted.recommend_codes(np.arange(movies.n_users), k=5)
    for row, user in enumerate(movies.user_ids):
        recs = fitted.recommend(user, k=5)
        assert [str(fitted.item_ids_[c]) for c in codes[row]] == [r.item_id for r in recs]


def test_odd_item_texts_are_still_indexed() -> None:
    items = pd.DataFrame(
        {
            "item_id": ["empty", "html", "long", "surrogate", "emoji", "control", "space"],
            "title": [
                "",
                "<h1>Title</h1><script>x()</script>&nbsp;&lt;tag&gt;",
                "epic " * 20_000,
                "bad \ud83d half pair",
                "🚀🌌✨",
                "\x00\x07\x1b[31m",
                "Astronauts explore a distant planet in deep space",
            ],
        }
    )
    frame = pd.DataFrame({"user_id": ["u"] * 3, "item_id": ["html", "long", "emoji"]})
    data = Dataset.from_frames(frame, items)
    rec = EmbeddingRetriever().fit(data)
    assert len(rec.index_) == 7
    assert np.isfinite(rec.embeddings_).all()
    assert rec.search("space exploration", k=1)[0].item_id == "space"
    assert {r.item_id for r in rec.recommend("u", k=10)} == {
        "empty", "surrogate", "control", "space"
    }


def test_update_item_texts_reencodes_only_changes(movies: Dataset) -> None:
    rec = EmbeddingRetriever().fit(movies)
    rec.embedder.stats.encoded = 0
    changed = rec.update_item_texts(
        {"cooking5": "A submarine crew hunts a sea monster in the deep ocean", "scifi0":
         rec_text(movies, "scifi0")}
    )
    assert changed == 1 and rec.embedder.stats.encoded == 1
    assert rec.search("submarine and a sea monster", k=1)[0].item_id == "cooking5"


def rec_text(movies: Dataset, item_id: str) -> str:
    return movies.item_texts()[int(movies.item_index([item_id])[0])]


# ---------------------------------------------------------------------- persistence
@pytest.fixture(scope="module")
def saved(fitted: EmbeddingRetriever, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fitted.save(tmp_path_factory.mktemp("models") / "embedding")


@pytest.mark.parametrize("index", ["flat", "hnsw"])
def test_round_trip_is_identical(movies: Dataset, tmp_path: Path, index: str) -> None:
    rec = EmbeddingRetriever(index=index, recency_half_life=3.0, dislike_weight=0.3).fit(movies)
    users = [*movies.user_ids, UserContext(preference_text="ghost story"),
             UserContext("drifter", preference_text="food")]
    before = rec.recommend_batch(users, k=8)
    again = hr.load(rec.save(tmp_path / "m"))
    assert isinstance(again, EmbeddingRetriever) and again.index_.kind == index
    assert again.recommend_batch(users, k=8) == before
    assert again.search("sushi", k=4) == rec.search("sushi", k=4)
    manifest = json.loads((tmp_path / "m" / MANIFEST).read_text())
    assert manifest["embedding_model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert manifest["dim"] == 384 and manifest["item_count"] == movies.n_items
    assert manifest["metric"] == "inner_product" and manifest["index_kind"] == index
    assert {"faiss-cpu", "sentence-transformers", "torch"} <= set(manifest["versions"])
    assert "index/index.faiss" in manifest["files"]


@pytest.mark.parametrize("name", ["index/index.faiss", "index/ids.npz", "state.npz"])
def test_corrupted_files_are_refused(saved: Path, tmp_path: Path, name: str) -> None:
    folder = tmp_path / "copy"
    shutil.copytree(saved, folder)
    blob = bytearray((folder / name).read_bytes())
    blob[len(blob) // 2] ^= 0x10
    (folder / name).write_bytes(bytes(blob))
    with pytest.raises(ModelFileError, match="checksum mismatch"):
        EmbeddingRetriever.load(folder)


def test_mismatched_model_is_refused(saved: Path, tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match="built with embedding model"):
        EmbeddingRetriever.load(saved, model="sentence-transformers/all-mpnet-base-v2")
    assert EmbeddingRetriever.load(saved, model="all-minilm-l6-v2").is_fitted
    # a folder whose manifest was edited to claim another model (checksums recomputed)
    folder = tmp_path / "edited"
    shutil.copytree(saved, folder)
    manifest = read_manifest(folder)
    manifest["params"]["model"] = "sentence-transformers/all-mpnet-base-v2"
    manifest["embedding_model"] = "sentence-transformers/all-mpnet-base-v2"
    rewrite(folder, manifest)
    with pytest.raises(ModelFileError, match="all-mpnet-base-v2"):
        EmbeddingRetriever.load(folder)


def test_index_from_another_catalogue_is_refused(
    saved: Path, tmp_path: Path, movies: Dataset
) -> None:
    items = movies.items.copy()
    items.loc[0, "description"] = "A different text"
    other = Dataset.from_frames(
        pd.DataFrame({"user_id": ["x"], "item_id": [items["item_id"][0]]}), items
    )
    other_folder = EmbeddingRetriever().fit(other).save(tmp_path / "other")
    folder = tmp_path / "mixed"
    shutil.copytree(saved, folder)
    shutil.rmtree(folder / "index")
    shutil.copytree(other_folder / "index", folder / "index")
    rewrite(folder, read_manifest(folder, verify=False))  # consistent checksums, wrong index
    with pytest.raises(ModelFileError, match="texts_sha256"):
        EmbeddingRetriever.load(folder)


def rewrite(folder: Path, manifest: dict) -> None:
    keep = {k: v for k, v in manifest.items() if k not in ("files", "format", "format_version")}
    write_manifest(folder, keep)


def test_truncated_state_file_is_refused(saved: Path, tmp_path: Path) -> None:
    folder = tmp_path / "truncated"
    shutil.copytree(saved, folder)
    blob = (folder / "state.npz").read_bytes()
    (folder / "state.npz").write_bytes(blob[: len(blob) // 2])
    rewrite(folder, read_manifest(folder, verify=False))  # checksums of the truncated file
    with pytest.raises(ModelFileError, match="state.npz: cannot read arrays"):
        EmbeddingRetriever.load(folder)


def test_relative_model_path_loads_from_any_directory(
    movies: Dataset, local_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(local_model.parent)
    rec = EmbeddingRetriever(model=local_model.name, index="flat").fit(movies)
    folder = rec.save(tmp_path / "saved")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # "minilm" means nothing here
    again = EmbeddingRetriever.load(folder)
    assert again.model == str(local_model.resolve())
    assert again.search("ghosts in a haunted house", k=4) == rec.search(
        "ghosts in a haunted house", k=4
    )
    assert EmbeddingRetriever.load(folder, model=str(local_model)).is_fitted
    # a model folder that was moved away is reported as such, not as tampering
    local_model.rename(tmp_path / "moved")
    with pytest.raises(ModelFileError, match="not found: it was moved or deleted") as err:
        EmbeddingRetriever.load(folder)
    assert "tampered" not in str(err.value)


def test_model_folder_changed_in_place_is_refused(
    movies: Dataset,
    local_model: Path,
    tmp_path: Path,
    change_model: Callable[[Path], None],
) -> None:
    rec = EmbeddingRetriever(model=str(local_model), index="flat").fit(movies)
    folder = rec.save(tmp_path / "saved")
    assert read_manifest(folder)["embedding_model"] == rec.embedder.model_id
    change_model(local_model)
    with pytest.raises(ModelFileError, match="changed since the retriever was saved"):
        EmbeddingRetriever.load(folder)
    with pytest.raises(ModelFileError, match="built with embedding model"):
        EmbeddingRetriever.load(folder, model=str(local_model))
    # refitting embeds the catalogue with the new files (no stale cached vectors)
    refit = EmbeddingRetriever(model=str(local_model), index="flat").fit(movies)
    assert refit.model_id != rec.model_id
    assert not np.allclose(refit.embeddings_, rec.embeddings_, atol=1e-3)


def test_update_item_texts_is_all_or_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    items = pd.DataFrame({"item_id": ["1", "2", "3"], "title": ["Space", "Love", "Ghosts"]})
    data = Dataset.from_frames(
        pd.DataFrame({"user_id": ["u", "u", "v"], "item_id": ["1", "2", "3"]}), items
    )
    rec = EmbeddingRetriever(index="flat").fit(data)

    def state() -> tuple:
        return (rec.embeddings_.copy(), rec.texts_sha256,
                rec.index_.reconstruct(np.arange(3)))

    before = state()

    def unchanged() -> bool:
        now = state()
        return (np.array_equal(now[0], before[0]) and now[1] == before[1]
                and np.array_equal(now[2], before[2]))

    # 1 and "1" are the same item: refused before anything changes
    with pytest.raises(DataError, match="more than once"):
        rec.update_item_texts({1: "A cookbook", "1": "A war film"})
    assert unchanged()

    # an index that fails to take the vectors leaves the embeddings and checksums as they were
    def broken(vectors: np.ndarray, ids: np.ndarray) -> None:
        raise RuntimeError("index update failed")

    monkeypatch.setattr(rec.index_, "update", broken)
    with pytest.raises(RuntimeError, match="index update failed"):
        rec.update_item_texts({"2": "A submarine thriller"})
    assert unchanged()
    monkeypatch.undo()
    assert rec.update_item_texts({"2": "A submarine thriller"}) == 1
    assert rec.search("submarine", k=1)[0].item_id == "2"


@pytest.fixture(scope="module")
def strict(movies: Dataset) -> EmbeddingRetriever:
    return EmbeddingRetriever(fallback="error").fit(movies)


@pytest.mark.parametrize("text", ["\x00\x07", "\u200b", " \u200e\x1b\n"])
def test_control_and_format_characters_are_no_text(
    fitted: EmbeddingRetriever, strict: EmbeddingRetriever, text: str
) -> None:
    with pytest.raises(ValueError, match="search text is empty"):
        fitted.search(text, k=3)
    assert fitted.recommend(UserContext(preference_text=text), k=5) == fitted.recommend(
        UserContext(), k=5
    )
    with pytest.raises(DataError, match="no history .*and no preference text"):
        strict.recommend(UserContext(preference_text=text), k=3)


def test_score_honours_fallback_error(strict: EmbeddingRetriever) -> None:
    with pytest.raises(DataError, match="no history .*and no preference text"):
        strict.score(UserContext(), ["scifi0", "horror1"])
    with pytest.raises(DataError, match="no history .*and no preference text"):
        strict.score(UserContext(preference_text="\u200b"), ["scifi0"])
    assert np.isfinite(strict.score("fan-scifi-0", ["scifi5", "horror1"])).all()
    assert np.isfinite(strict.score(UserContext(preference_text="ghosts"), ["horror1"])).all()


# ---------------------------------------------------------------------- items without text
def catalogue(titles: list[object], **more: list[object]) -> Dataset:
    ids = [f"i{n}" for n in range(len(titles))]
    items = pd.DataFrame({"item_id": ids, "title": titles, **more})
    frame = pd.DataFrame({"user_id": ["u", "u", "v"], "item_id": ids[:2] + ids[-1:]})
    return Dataset.from_frames(frame, items)


def test_catalogue_without_any_text_is_refused(movies: Dataset) -> None:
    no_columns = Dataset.from_frames(pd.DataFrame({"user_id": ["u"], "item_id": ["1"]}))
    with pytest.raises(DataError, match="every item text is empty .*none of the columns"):
        hr.create("embedding").fit(no_columns)
    blank = catalogue(["", "  ", None, "\x00\u200b"], year=[None] * 4)
    rec = hr.create("embedding")
    with pytest.raises(DataError, match=r"column\(s\) \['title', 'year'\] are empty") as err:
        rec.fit(blank)
    assert "text_fields" in str(err.value) and "give items a text" in str(err.value)
    assert not rec.is_fitted
    # text_fields naming no filled column: the message names them and the other columns
    with pytest.raises(DataError, match=r"text_fields=\['plot'\].*other columns \['title'"):
        EmbeddingRetriever(text_fields=["plot"]).fit(movies)
    # a refused refit leaves no half-fitted retriever behind
    fitted = EmbeddingRetriever().fit(movies)
    with pytest.raises(DataError):
        fitted.fit(blank)
    assert not fitted.is_fitted


def test_items_without_text_get_zero_vectors_and_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = catalogue(
        ["A starship crew explores distant galaxies", "", "Two strangers fall in love in Paris",
         "\u200b\x00", "A haunted house terrorises a family"]
    )
    with caplog.at_level(logging.WARNING, logger="hybridrec.retrieval.retriever"):
        rec = EmbeddingRetriever(index="flat", popularity_weight=0.0).fit(data)
    assert "2 of 5 item texts are empty (item(s) 'i1', 'i3')" in caplog.text
    assert "popularity prior" in caplog.text
    assert rec.empty_texts_ == 2
    norms = np.linalg.norm(rec.embeddings_, axis=1)
    assert norms.tolist()[1] == norms.tolist()[3] == 0.0
    np.testing.assert_allclose(norms[[0, 2, 4]], 1.0, atol=1e-5)
    # neutral to every query: they rank below every item whose text is near the query
    ranked = [r.item_id for r in rec.search("space adventure", k=5)]
    assert ranked[0] == "i0" and {r.score for r in rec.search("space", k=5)
                                  if r.item_id in ("i1", "i3")} == {0.0}
    # a user who only saw an item without text has nothing to go on: popularity answers
    assert rec.user_vector(UserContext(history=[Interaction("i1")])).tolist() == [0.0] * 384
    # the count survives saving, and follows text updates
    again = EmbeddingRetriever.load(rec.save(tmp_path / "m"))
    assert again.empty_texts_ == 2
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="hybridrec.retrieval.retriever"):
        assert again.update_item_texts({"i1": "Sushi chefs at work", "i0": " "}) == 2
    assert "1 new item text(s) are empty (item(s) 'i0')" in caplog.text
    assert again.empty_texts_ == 2 and again.search("sushi", k=1)[0].item_id == "i1"
    # leaving no text at all is refused, and changes nothing
    before = again.embeddings_.copy()
    with pytest.raises(DataError, match="every item text empty"):
        again.update_item_texts({"i1": "", "i2": None, "i4": "\u200e"})
    np.testing.assert_array_equal(again.embeddings_, before)


# ---------------------------------------------------------------------- damaged caches
def test_cache_shard_with_wrong_vectors_is_encoded_again(movies: Dataset, tmp_path: Path) -> None:
    cached = EmbeddingRetriever(cache=str(tmp_path)).fit(movies)
    [shard] = cached.embedder.cache.folder.glob("shard-*.npz")
    with np.load(shard, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    arrays["vectors"] = np.roll(arrays["vectors"], 1, axis=0)  # well-formed, unit, wrong
    with open(shard, "wb") as fh:
        np.savez(fh, **arrays)
    refit = EmbeddingRetriever(cache=str(tmp_path)).fit(movies)
    assert refit.embedder.stats.encoded == movies.n_items  # nothing taken from the bad shard
    plain = EmbeddingRetriever(cache=False).fit(movies)
    np.testing.assert_allclose(refit.embeddings_, plain.embeddings_, atol=1e-5)
    assert refit.search("ghosts", k=3) == plain.search("ghosts", k=3)


# ---------------------------------------------------------------------- swapped index files
def test_index_file_of_another_retriever_is_refused(
    saved: Path, tmp_path: Path, movies: Dataset
) -> None:
    items = movies.items.copy()
    items["description"] = items["description"].iloc[::-1].to_numpy()  # same size, other texts
    frame = pd.DataFrame({"user_id": ["x"], "item_id": [items["item_id"][0]]})
    other = EmbeddingRetriever().fit(Dataset.from_frames(frame, items)).save(tmp_path / "other")
    assert (other / "index" / "index.faiss").stat().st_size == (
        saved / "index" / "index.faiss"
    ).stat().st_size
    folder = tmp_path / "swapped"
    shutil.copytree(saved, folder)
    shutil.copyfile(other / "index" / "index.faiss", folder / "index" / "index.faiss")
    with pytest.raises(ModelFileError, match="index.faiss: checksum mismatch"):
        EmbeddingRetriever.load(folder)
    # the index folder's own manifest rewritten to match: the retriever's manifest still refuses
    index_manifest = read_manifest(folder / "index", verify=False)
    rewrite(folder / "index", index_manifest)
    with pytest.raises(ModelFileError, match="checksum mismatch"):
        EmbeddingRetriever.load(folder)


# ---------------------------------------------------------------------- hostile texts
HOSTILE = {
    "long": "An epic saga " + "of wars and kings " * 100_000,
    "nul": "Space\x00pirates\x00raid a\x00freighter",
    "control": "\x1b[31mRed\x1b[0m alert on the \x07starship\x08",
    "surrogate": "Ghost \ud800 story with \udfff halves \ud83d",
    "rtl": "\u202eA haunted mansion\u202c \u200fمنزل مسكون\u200e \u2067isolate\u2069",
    "bom": "\ufeffCooking \ufffe pasta \U0010ffff in Rome",
    "padded": "\x00" * 40_000 + "Zombies overrun a town",
    "plain": "Two strangers fall in love in Paris",
}


def test_hostile_item_texts_fit_search_and_save(tmp_path: Path) -> None:
    ids = list(HOSTILE)
    items = pd.DataFrame({"item_id": ids, "description": list(HOSTILE.values())})
    frame = pd.DataFrame({"user_id": ["u", "u", "v"], "item_id": ["nul", "rtl", "plain"]})
    data = Dataset.from_frames(frame, items)
    rec = EmbeddingRetriever(text_fields=["description"], cache=str(tmp_path / "c")).fit(data)
    assert len(rec.index_) == len(ids) and np.isfinite(rec.embeddings_).all()
    assert rec.empty_texts_ == 0
    assert rec.search("zombies", k=1)[0].item_id == "padded"
    assert rec.search("space pirates", k=1)[0].item_id == "nul"
    for query in [*HOSTILE.values(), "\ud800", "\u202e\u202c x", "a\x00b", "x" * 3_000_000]:
        results = rec.search(query, k=3)
        assert len(results) == 3 and all(np.isfinite(r.score) for r in results)
        recs = rec.recommend(UserContext(history=[Interaction("nul")], preference_text=query), k=3)
        assert len(recs) == 3 and "nul" not in {r.item_id for r in recs}
    assert len(rec.recommend("u", k=4)) == 4
    assert rec.update_item_texts({"plain": "\u202e\x00" + HOSTILE["surrogate"]}) == 1
    again = EmbeddingRetriever.load(rec.save(tmp_path / "m"))
    assert again.search("ghost story", k=3) == rec.search("ghost story", k=3)
    # refitting reads every hostile text back from the cache
    refit = EmbeddingRetriever(text_fields=["description"], cache=str(tmp_path / "c")).fit(data)
    assert refit.embedder.stats.encoded == 0


# ---------------------------------------------------------------------- the contract
class TestContractWithHNSW(RecommenderContract):
    """The contract suite with the approximate index (the flat one runs in tests/test_contract)."""

    def make(self) -> hr.Recommender:
        return hr.create("embedding", index="hnsw")
