"""Corpora: loading what the experiment names, refusing what Flair could not train on or score, and what a
loaded corpus tells (its constant-predictor bar, the settings that would load it again)."""
