"""The learning-rate range test Flair 0.13 removed, back and fixed: the sweep, the curve and its files, the
rules that read a rate off it, its plot, and the run it is tracked as."""
