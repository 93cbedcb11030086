"""The model zoo, installed as ``bench.models``: one module per model, each with TF and JAX twins.

Modules import their framework only inside ``build_tf``/``build_jax``, so the registry can be read
(by ``bench list`` and ``bench validate``) without TensorFlow or JAX installed.
"""

REGISTRY: dict[str, str] = {
    "decoder": "bench.models.decoder",
    "mlp": "bench.models.mlp",
    "resnet": "bench.models.resnet",
    "transformer": "bench.models.transformer",
}
