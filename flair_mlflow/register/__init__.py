"""A finished search's best model, trained (or kept), tested once, registered as a pyfunc under the champion rule."""
