"""Corpora: loading what an experiment names, refusing what Flair could not train on or score, what a corpus tells."""
