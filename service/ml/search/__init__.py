"""Cross-validated search over an estimator family's hyperparameters (see :mod:`.evaluate`)."""
