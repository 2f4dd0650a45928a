"""Standard inference protocols over the models domain: MLflow's ``/invocations`` and the
Open Inference Protocol v2 (KServe)."""
