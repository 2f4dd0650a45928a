"""Pure numerics: penalties, preprocessing, fitting and metrics. No HTTP, no database."""
