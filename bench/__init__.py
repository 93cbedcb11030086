"""bench: benchmark ML training and batch prediction in TensorFlow and JAX on CPU, GPU and TPU.

Importing ``bench`` imports no framework; workers import one each, in their own process.
"""

__version__ = "0.1.0"
