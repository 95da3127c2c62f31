"""The common benchmark harness: run cells, share features, store results, report."""
