"""Pure numerics: no HTTP, no database, nothing else of ``service`` (``make lint`` checks).

``spec`` (the job's validated arguments) → ``fitting.fit_job`` (``split``, ``pipeline``
preprocessing, the family's estimator from ``estimators``, a ``search`` on ``paths`` when
tuned) → a ``FitResult`` holding the ``portable`` model. Errors are ``errors.MLError``\\ s;
the callers decide what they mean to a client.
"""
