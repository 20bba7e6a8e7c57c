"""Analysis of trained networks and run directories (figures, comparisons)."""
