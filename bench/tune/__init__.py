"""``bench tune``: the configuration to deploy, found without measuring the whole grid.

The scenario's matrix is the search space. Memory pruning (``memory``) rules out cells whose
compiled program cannot fit before any of them runs; a search (``search``) measures cells
briefly in an order the grid's structure suggests; a race (``race``) drops a cell only when the
gate's statistics show it worse than the leader beyond noise; the survivors are measured again,
interleaved, and ``bench recommend``'s own ``choose`` names the answer and its ties.

The decisions never measure anything themselves: they ask a ``Measurer`` (``measurer``). The
real one (``real``) drives bench's runner and workers into a normal run folder; the simulated
one (``simulate``) draws step times from a known grid, so the benchmark in ``.ci/tune-bench``
judges the very code ``bench tune`` runs.
"""
