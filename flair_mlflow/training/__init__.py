"""Training one configuration: building its model, the one call of Flair's trainer, the trainer plugins,
and the torch threads a training runs with."""
