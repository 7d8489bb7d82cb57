"""Embeddings named by short strings: building them, sharing frozen ones, and keeping their vectors."""
