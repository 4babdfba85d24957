"""`make bench`: the users service and the webapp against their limits and peers, in one run."""
