"""The job machinery: executors (local pool, Celery dispatch), worker processes, the runner.

HTTP domains reach it only through :mod:`service.worker.executor` (the ``Executor``
protocol and ``create_executor``); everything else here is the workers' own business.
"""
