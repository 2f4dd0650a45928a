"""Datasets: upload (CSV, Parquet, JSON Lines, inline JSON), synthetic data, summaries, rows."""
