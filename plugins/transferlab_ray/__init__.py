"""The ``ray`` executor: a suite's cells as Ray tasks, on a local Ray or an existing cluster
(``pip install 'transferlab[ray]'``)."""
