"""Sweeps across machines as Kubeflow pipelines."""
