"""Training one configuration: its model, the one call of Flair's trainer, the trainer plugins, the torch threads."""
