"""Flair 0.13's removed learning-rate range test, fixed: sweep, curve and files, rules, plot and tracked run."""
