"""Every registered recommender and reranker, plugins included, passes the contract suite."""

from __future__ import annotations

import pytest

import hybridrec as hr
from hybridrec.contract import RecommenderContract, RerankerContract


@pytest.fixture(params=hr.available())
def recommender_name(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(params=hr.available_rerankers())
def reranker_name(request: pytest.FixtureRequest) -> str:
    return request.param


class TestRegisteredRecommenders(RecommenderContract):
    @pytest.fixture(autouse=True)
    def _name(self, recommender_name: str) -> None:
        self.name = recommender_name

    def make(self) -> hr.Recommender:
        return hr.create(self.name)


class TestRegisteredRerankers(RerankerContract):
    @pytest.fixture(autouse=True)
    def _name(self, reranker_name: str) -> None:
        self.name = reranker_name

    def make(self) -> hr.Reranker:
        return hr.create_reranker(self.name)
