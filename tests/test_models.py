"""The zoo's twins are the same model: parameter counts, outputs with the same weights, FLOPs
against XLA's count, learning, steps_per_call, and the same optimizer in both frameworks.

TF and JAX never share a process: the slow tests here share one run of ``tests/twins.py`` per
framework (JAX first, then TensorFlow, which loads the JAX side's weights) and compare the
arrays the two wrote. The fast tests check the analytic formulas with their arithmetic.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from bench.models import resnet, transformer
from pydantic import ValidationError

from bench.run.scenario import load_scenario

REPO = Path(__file__).resolve().parent.parent

# Small sizes for the checks that run models on 2 CPU cores.
MLP = {"hidden": [32, 16], "vocab_size": 50, "embed_dim": 4, "num_numeric": 5, "num_categorical": 3}
MLP_REGRESSION = {**MLP, "task": "regression", "num_targets": 3}
RESNET18 = {"depth": 18, "image_size": 32, "width": 8, "num_classes": 10}
RESNET50 = {"depth": 50, "image_size": 16, "width": 4, "num_classes": 10, "stem": "cifar"}
TRANSFORMER = {"num_layers": 2, "d_model": 32, "num_heads": 4, "seq_len": 16, "vocab_size": 100}
TWINS = {
    "mlp": ("mlp", MLP),
    "mlp_regression": ("mlp", MLP_REGRESSION),
    "resnet18": ("resnet", RESNET18),
    "resnet50": ("resnet", RESNET50),
    "transformer": ("transformer", TRANSFORMER),
}
# Sizes where XLA's count of the forward pass is dominated by what the formula counts (at
# d_model 32 GELU and softmax add 45%: the formula ignores elementwise work on purpose).
FLOPS = {
    "mlp": ("mlp", {}),
    "resnet18": ("resnet", {"depth": 18, "image_size": 32, "width": 16, "num_classes": 10}),
    "resnet50": ("resnet", {"depth": 50, "image_size": 64, "width": 32, "num_classes": 10}),
    "transformer": (
        "transformer",
        {"num_layers": 2, "d_model": 256, "num_heads": 4, "seq_len": 64, "vocab_size": 1000},
    ),
}
FLOPS_TRAIN = ("mlp", "resnet18", "transformer")  # the gradient of a ResNet-50 compiles slowly
# Learning runs the real train step 200 times: one ResNet (the bottleneck variant shares it).
LEARN = ("mlp", "mlp_regression", "resnet18", "transformer")
# Published parameter counts: torchvision's resnet18/resnet50, and Hugging Face's
# bert-base-uncased (109,482,240 with its pooler) minus token-type embeddings (2 x 768) plus
# our 2-class head (768 x 2 + 2).
REFERENCE_COUNTS = {
    "resnet18_imagenet": ("resnet", {"depth": 18}, 11_689_512),
    "resnet50_imagenet": ("resnet", {"depth": 50}, 25_557_032),
    "bert_base": ("transformer", {"seq_len": 512}, 109_482_240 - 2 * 768 + 768 * 2 + 2),
}
ADAM = {"name": "adam", "learning_rate": 1e-3}
LEARN_STEPS = 200
SPC_STEPS, SPC_K = 8, 4
# Batch norm over few values amplifies round-off (a ResNet at 32x32 ends on 1x1 maps): at 64x64
# and batch 8 the last stage normalises 32 values per channel, and float32 differences between
# a scanned and a single step stay at round-off size instead of growing step by step.
SPC_MODELS = {
    "mlp": ("mlp", MLP),
    "resnet18": ("resnet", {**RESNET18, "image_size": 64, "width": 4}),
}
# numpy: a stack of K batches per call; synthetic: one batch reused (batch-norm state in the loop).
SPC_CASES = [("mlp", "numpy"), ("mlp", "synthetic"), ("resnet18", "synthetic")]


def shipped_sizes() -> dict[str, tuple[str, dict[str, Any]]]:
    """Every (model, model_args) a shipped scenario uses: those need exact parameter parity."""
    sizes = {}
    for path in sorted((REPO / "scenarios").glob("*.yaml")):
        scenario = load_scenario(path).scenario
        sizes[f"scenario_{path.stem}"] = (scenario.model, scenario.model_args)
    return sizes


def jobs(tmp: Path) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for name, (model, args) in shipped_sizes().items():
        out.append({"id": f"params_{name}", "kind": "params", "model": model, "args": args})
    for name, (model, args) in TWINS.items():
        out.append({"id": f"params_{name}", "kind": "params", "model": model, "args": args})
        out.append(
            {
                "id": f"forward_{name}",
                "kind": "forward",
                "model": model,
                "args": args,
                "batch": 4,
                "weights_from": str(tmp / "jax.npz"),
            }
        )
        learn = {"model": model, "args": args, "batch": 8, "optimizer": ADAM, "input": "numpy"}
        if name in LEARN:
            out.append({"id": f"learn_{name}", "kind": "train", "steps": LEARN_STEPS, **learn})
        if name in LEARN and name != "mlp_regression":
            out.append(
                {
                    "id": f"bf16_{name}",
                    "kind": "train",
                    "steps": 2,
                    "precision": "bfloat16",
                    **{**learn, "batch": 4},
                }
            )
    for name, (model, args, _) in REFERENCE_COUNTS.items():
        # JAX only, from shapes: a BERT-base in Keras would allocate and initialise 110M weights.
        out.append(
            {
                "id": f"reference_{name}",
                "kind": "params",
                "model": model,
                "args": args,
                "frameworks": ["jax"],
            }
        )
    for name, (model, args) in FLOPS.items():
        out.append(
            {
                "id": f"flops_{name}",
                "kind": "flops",
                "model": model,
                "args": args,
                "batch": 2,
                "train": name in FLOPS_TRAIN,
            }
        )
    for name, input_kind in SPC_CASES:
        model, args = SPC_MODELS[name]
        for k in (1, SPC_K):
            out.append(
                {
                    "id": f"spc_{name}_{input_kind}_k{k}",
                    "kind": "train",
                    "model": model,
                    "args": args,
                    "batch": 8,
                    "input": input_kind,
                    "optimizer": {"name": "sgd", "learning_rate": 0.01, "momentum": 0.9},
                    "steps": SPC_STEPS,
                    "steps_per_call": k,
                }
            )
    # TensorFlow's XLA path, with the K-step loop inside the jit-compiled function.
    (looped,) = [j for j in out if j["id"] == f"spc_mlp_numpy_k{SPC_K}"]
    out.append({**looped, "id": "xla_mlp", "xla": True, "frameworks": ["tensorflow"]})
    for opt in (
        {"name": "sgd", "learning_rate": 0.1, "momentum": 0.9, "weight_decay": 0.01},
        {"name": "sgd", "learning_rate": 0.1, "momentum": 0.0},
        {"name": "adam", "learning_rate": 0.01},
        {"name": "adamw", "learning_rate": 0.01, "weight_decay": 0.05},
    ):
        tag = f"{opt['name']}_m{opt.get('momentum', '')}"
        out.append({"id": f"opt_{tag}", "kind": "optimizer", "optimizer": opt, "steps": 6})
    return out


def run_side(framework: str, jobs_path: Path, out: Path) -> dict[str, np.ndarray]:
    env = dict(os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="2")
    if framework == "jax":
        # XLA's CPU compiles of these tiny models take far longer than running them on 2 cores;
        # LLVM's optimisation level changes their speed, not their float semantics.
        env.update(JAX_PLATFORMS="cpu", XLA_FLAGS="--xla_backend_optimization_level=0")
    else:
        env.update(CUDA_VISIBLE_DEVICES="-1", KERAS_BACKEND="tensorflow")
    done = subprocess.run(
        [sys.executable, "-m", "tests.twins", framework, str(jobs_path), str(out)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, f"{framework} side failed:\n{done.stderr[-4000:]}"
    with np.load(out) as found:
        return {k: found[k] for k in found.files}


@pytest.fixture(scope="module")
def sides(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, np.ndarray]]:
    tmp = tmp_path_factory.mktemp("twins")
    jobs_path = tmp / "jobs.json"
    jobs_path.write_text(json.dumps(jobs(tmp)))
    jax_side = run_side("jax", jobs_path, tmp / "jax.npz")  # first: TF loads its weights
    tf_side = run_side("tensorflow", jobs_path, tmp / "tf.npz")
    return {"jax": jax_side, "tensorflow": tf_side}


def weights(side: dict[str, np.ndarray], job: str) -> dict[str, np.ndarray]:
    prefix = f"{job}/w/"
    return {k[len(prefix) :]: v for k, v in side.items() if k.startswith(prefix)}


def rel_error(found: np.ndarray, expected: np.ndarray) -> float:
    """Largest deviation over the largest magnitude: one number per output tensor."""
    return float(np.max(np.abs(found - expected)) / np.max(np.abs(expected)))


# ------------------------------------------------------------------------ framework-free checks


def test_taps_counts_only_kernel_positions_on_real_input():
    # 3x3, stride 1, n = 4: the edge outputs see 2 of 3 rows, the middle ones 3: 2+3+3+2.
    assert resnet.taps(4, 3, 1) == 10
    # A 1x1 map under a 3x3 kernel: only the centre tap is real.
    assert resnet.taps(1, 3, 1) == 1
    # 7x7 stride 2 on 224: 112 outputs, pad 2 before and 3 after; the first output sees 5 real
    # rows, the second 6, the last 4 (rows 221..223 + 3 padding), the other 109 all 7.
    assert resnet.taps(224, 7, 2) == 5 + 6 + 109 * 7 + 4
    # 1x1 kernels never touch padding.
    assert resnet.taps(56, 1, 2) == 28


def test_resnet50_flops_match_the_literature_less_padding():
    # The usual figure, 4.09 GMACs (8.18 GFLOPs) at 224x224, counts k^2 taps per output,
    # SAME-padding zeros included; without them about 3.5% less.
    args = resnet.Args(depth=50, image_size=224)
    forward = resnet.flops_per_example(args, "predict")
    assert 0.95 * 8.18e9 < forward < 8.18e9
    stem = 2 * 3 * 64 * resnet.taps(224, 7, 2) ** 2
    assert resnet.flops_per_example(args, "train") == 3 * forward - stem


def test_transformer_flops_formula_arithmetic():
    args = transformer.Args(
        num_layers=1, d_model=4, num_heads=2, mlp_ratio=2, seq_len=2, vocab_size=10
    )
    # S=2, d=4, f=8: projections 2*2*4*16 = 256, attention 2*2*2*2*4 = 64, MLP 2*2*2*4*8 = 256;
    # pooler 2*16 = 32, classifier 2*4*2 = 16.
    assert transformer.flops_per_example(args, "predict") == 256 + 64 + 256 + 32 + 16
    assert transformer.flops_per_example(args, "train") == 3 * 624
    assert transformer.data_spec(args).tokens_per_example == 2


def test_transformer_heads_must_divide_width():
    with pytest.raises(ValidationError, match="multiple of num_heads"):
        transformer.Args(d_model=10, num_heads=4)


def test_model_modules_import_no_framework():
    code = (
        "import sys, bench.models.mlp, bench.models.resnet, bench.models.transformer\n"
        "import bench.models.decoder\n"
        "from bench.modeldef import load_model\n"
        "for name in ('mlp', 'resnet', 'transformer', 'decoder'):\n"
        "    m = load_model(name); a = m.Args(); m.data_spec(a); m.flops_per_example(a, 'train')\n"
        "assert not {'jax', 'tensorflow', 'keras', 'flax'} & set(sys.modules), sys.modules.keys()\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


# ------------------------------------------------------------------ twin checks (subprocesses)


@pytest.mark.slow
@pytest.mark.heavy
def test_parameter_counts_match_across_twins(sides):
    names = [*shipped_sizes(), *TWINS]
    assert any(n.startswith("scenario_resnet") for n in names)
    for name in names:
        jax_count = int(sides["jax"][f"params_{name}/count"])
        tf_count = int(sides["tensorflow"][f"params_{name}/count"])
        assert jax_count == tf_count, f"{name}: jax {jax_count} vs tensorflow {tf_count}"


@pytest.mark.slow
@pytest.mark.heavy
def test_parameter_counts_match_published_architectures(sides):
    for name, (_, _, expected) in REFERENCE_COUNTS.items():
        assert int(sides["jax"][f"reference_{name}/count"]) == expected, name


@pytest.mark.slow
@pytest.mark.heavy
@pytest.mark.parametrize("name", list(TWINS))
def test_same_weights_give_the_same_outputs(sides, name):
    # twins.tf_forward asserts every variable found its twin by name, with the same shape.
    for mode in ("infer", "train"):  # train: batch statistics instead of moving ones
        jax_out = sides["jax"][f"forward_{name}/{mode}"]
        tf_out = sides["tensorflow"][f"forward_{name}/{mode}"]
        assert jax_out.shape == tf_out.shape
        assert rel_error(tf_out, jax_out) < 1e-4, (name, mode)


@pytest.mark.slow
@pytest.mark.heavy
@pytest.mark.parametrize("name", list(FLOPS))
def test_analytic_flops_agree_with_xla_cost_analysis(sides, name):
    found = sides["jax"]
    predict = found[f"flops_{name}/xla_predict"] / found[f"flops_{name}/analytic_predict"]
    assert 0.9 < predict < 1.1, f"forward: XLA counts {predict:.3f}x the formula"
    if name in FLOPS_TRAIN:
        # The gradient adds elementwise backward work the formula ignores; it stays near 3x too.
        train = found[f"flops_{name}/xla_train"] / found[f"flops_{name}/analytic_train"]
        assert 0.9 < train < 1.15, f"train: XLA counts {train:.3f}x the formula"


@pytest.mark.slow
@pytest.mark.heavy
@pytest.mark.parametrize("framework", ["jax", "tensorflow"])
@pytest.mark.parametrize("name", LEARN)
def test_training_reduces_the_loss(sides, framework, name):
    losses = sides[framework][f"learn_{name}/losses"]
    assert np.all(np.isfinite(losses))
    # First and last 10 steps (the TF side's first call compiled and ran before recording).
    start, end = losses[:10].mean(), losses[-10:].mean()
    assert end < 0.5 * start, f"{framework} {name}: loss {start:.3f} -> {end:.3f}"


@pytest.mark.slow
@pytest.mark.heavy
@pytest.mark.parametrize("framework", ["jax", "tensorflow"])
@pytest.mark.parametrize("name", [n for n in LEARN if n != "mlp_regression"])
def test_bfloat16_mixed_precision_trains_with_float32_parameters(sides, framework, name):
    side = sides[framework]
    assert np.all(np.isfinite(side[f"bf16_{name}/losses"]))
    found = weights(side, f"bf16_{name}")
    assert found and all(v.dtype == np.float32 for v in found.values())


@pytest.mark.slow
@pytest.mark.heavy
@pytest.mark.parametrize("framework", ["jax", "tensorflow"])
@pytest.mark.parametrize(("name", "input_kind"), SPC_CASES)
def test_steps_per_call_computes_what_single_steps_do(sides, framework, name, input_kind):
    side = sides[framework]
    single = weights(side, f"spc_{name}_{input_kind}_k1")
    looped = weights(side, f"spc_{name}_{input_kind}_k{SPC_K}")
    assert single.keys() == looped.keys() and single  # parameters and batch-norm statistics
    # TensorFlow runs the same kernels in its loop (bit-identical); XLA fuses a scanned step
    # differently from a single one, so JAX agrees to float32 round-off.
    for key, value in single.items():
        np.testing.assert_allclose(looped[key], value, rtol=1e-4, atol=1e-6, err_msg=key)
    np.testing.assert_allclose(
        side[f"spc_{name}_{input_kind}_k{SPC_K}/losses"][-SPC_K:],
        side[f"spc_{name}_{input_kind}_k1/losses"][-SPC_K:],
        rtol=1e-4,
    )


@pytest.mark.slow
@pytest.mark.heavy
def test_tensorflow_xla_loop_matches_the_graph_loop(sides):
    side = sides["tensorflow"]
    graph = weights(side, f"spc_mlp_numpy_k{SPC_K}")
    xla = weights(side, "xla_mlp")
    for key, value in graph.items():
        # Different kernels and fusion: float32 round-off, not a different computation.
        np.testing.assert_allclose(xla[key], value, rtol=1e-4, atol=1e-5, err_msg=key)


@pytest.mark.slow
@pytest.mark.heavy
@pytest.mark.parametrize("tag", ["sgd_m0.9", "sgd_m0.0", "adam_m", "adamw_m"])
def test_optimizers_update_alike_in_both_frameworks(sides, tag):
    # Alternate gradients of 1 and 1e-7: Keras adds Adam's epsilon before bias correction,
    # optax.adam after, and tiny gradients show the difference (see make_optimizer).
    jax_w, tf_w = weights(sides["jax"], f"opt_{tag}"), weights(sides["tensorflow"], f"opt_{tag}")
    assert jax_w.keys() == tf_w.keys() == {"kernel", "bias"}
    for key in jax_w:
        np.testing.assert_allclose(tf_w[key], jax_w[key], rtol=1e-5, atol=1e-6, err_msg=key)
