"""Hybrid retrieval of departments: dictionary terms, jieba + BM25, and dense embeddings."""
