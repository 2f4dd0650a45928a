"""Many alphas at once: the least-squares problem, the Ridge and coordinate-descent path
solvers, and the folds' moments."""
