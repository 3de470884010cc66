"""Reranking stage: rerankers that score (user, candidate) pairs (see :mod:`hybridrec.reranker`)."""
