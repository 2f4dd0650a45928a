"""Training jobs: the durable queue, the executors and the runner."""
