"""Workloads: what a cell does with the model (train, predict, serve, and plug-ins).

Each workload kind declares itself once (``bench.workloads.spec.WorkloadSpec``, in its own
package's ``__init__``) and is found through ``bench.workloads.registry``; how a cell of it is
measured lives beside the declaration, imported only in a worker. docs/extending.md shows how
to add one.
"""
