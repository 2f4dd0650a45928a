"""What every HTTP domain shares: responses, typed dependencies, paging."""
