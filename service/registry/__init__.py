"""The model registry: named models with numbered versions and movable aliases."""
