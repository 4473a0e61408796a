"""Query to ranked hits: the searcher and the neighbour scans under it."""
