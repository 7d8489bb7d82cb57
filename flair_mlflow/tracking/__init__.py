"""Everything this package writes to or reads from MLflow; it knows nothing of Flair or torch."""
