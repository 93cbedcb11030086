"""The zoo's decoder (bench.models.decoder), framework-free: its analytic FLOPs, parameter and
KV-cache bytes by hand, the shapes a compiled decoder is built for, and the sampling rule
(bench.serve.generation.sampling). The twins themselves: tests/test_decoder_twins.py."""

from __future__ import annotations

import numpy as np
import pytest
from bench.models import decoder
from pydantic import ValidationError

from bench.serve.generation import sampling
from bench.serve.generation.shapes import check_shapes, check_temperature, padded_prompt

# L=1, d=4, f=8 (mlp_ratio 2), V=10, max_positions 6.
TINY = decoder.Args(
    num_layers=1, d_model=4, num_heads=2, mlp_ratio=2, vocab_size=10, max_positions=6
)


def test_prefill_flops_by_hand():
    # P=3: projections 2*3*4*16 = 384; MLP 2*3*2*4*8 = 384; causal attention: 1+2+3 = 6 pairs
    # of 2*4 (scores) + 2*4 (weighted sum) = 96; the head on the last position 2*4*10 = 80.
    assert decoder.prefill_flops(TINY, 3) == 384 + 384 + 96 + 80


def test_decode_flops_by_hand():
    # One token: projections 2*4*16 = 128, MLP 2*2*4*8 = 128, attention over C=5 positions
    # 5 * 16 = 80, head 80.
    assert decoder.decode_flops(TINY, 5) == 128 + 128 + 80 + 80
    two_layers = TINY.model_copy(update={"num_layers": 2})
    assert decoder.decode_flops(two_layers, 5) == 2 * (128 + 128 + 80) + 80


def test_forward_pass_flops_are_the_full_context_prefill():
    assert decoder.flops_per_example(TINY, "predict") == decoder.prefill_flops(TINY, 6)
    assert decoder.flops_per_example(TINY, "train") == 3 * decoder.prefill_flops(TINY, 6)
    spec = decoder.data_spec(TINY)
    assert spec.features["tokens"].shape == (6,) and spec.num_outputs == 10
    assert spec.tokens_per_example == 6


def test_param_count_by_hand_and_by_name():
    # embeddings 10*4 + 6*4 = 64; a block: 4*(16+4) + (32+8) + (32+4) + 2*2*4 norms = 172;
    # final norm 8; head 4*10 = 40.
    assert decoder.param_count(TINY) == 64 + 172 + 8 + 40
    shapes = decoder.param_shapes(TINY)
    assert sum(int(np.prod(s)) for s in shapes.values()) == decoder.param_count(TINY)
    assert shapes["params/layer_0/attention/query/kernel"] == (4, 4)


def test_weight_and_kv_cache_bytes_per_precision():
    # 284 parameters, 24 of them LayerNorm's (kept in float32).
    assert decoder.norm_param_count(TINY) == 24
    assert decoder.weight_bytes(TINY, "float32") == 284 * 4
    assert decoder.weight_bytes(TINY, "bfloat16") == 260 * 2 + 24 * 4
    assert decoder.weight_bytes(TINY, "float16") == decoder.weight_bytes(TINY, "bfloat16")
    # keys and values * 1 layer * 3 slots * 5 positions * d 4 * width
    assert decoder.kv_cache_bytes(TINY, 3, 5, "float32") == 2 * 3 * 5 * 4 * 4
    assert decoder.kv_cache_bytes(TINY, 3, 5, "bfloat16") == 2 * 3 * 5 * 4 * 2
    with pytest.raises(ValueError, match="precision 'int4'"):
        decoder.kv_cache_bytes(TINY, 3, 5, "int4")


def test_decode_step_bytes_by_hand():
    # float32: 284 parameters less the tables (10 + 6) * 4 = 64, plus 2 slots * 2 rows * d 4 =
    # 16 gathered: 236 * 4 bytes; the cache of 2 slots * 5 positions: 2 * 2 * 5 * 4 * 4.
    assert decoder.decode_step_bytes(TINY, 2, 5, "float32") == 236 * 4 + 320
    # bfloat16: the 24 LayerNorm parameters stay 4 bytes, the other 212 take 2; cache halves.
    assert decoder.decode_step_bytes(TINY, 2, 5, "bfloat16") == 212 * 2 + 24 * 4 + 160


def test_goal_size_is_about_a_billion_parameters():
    goal = decoder.Args(
        num_layers=16, d_model=2048, num_heads=16, vocab_size=32000, max_positions=2048
    )
    assert 0.93e9 < decoder.param_count(goal) < 0.95e9
    # 2 * 16 layers * 2048 * 2 bytes = 131072 bytes of cache per position in bfloat16
    assert decoder.kv_cache_bytes(goal, 1, 1, "bfloat16") == 131072


def test_heads_must_divide_width():
    with pytest.raises(ValidationError, match="multiple of num_heads"):
        decoder.Args(d_model=10, num_heads=4)


def test_shapes_are_checked_before_anything_compiles():
    assert check_shapes(TINY, 2, 6, [4, 2, 4]) == (2, 4)
    with pytest.raises(ValueError, match="cache_len 7"):
        check_shapes(TINY, 2, 7, [2])
    with pytest.raises(ValueError, match=r"buckets \[2, 9\]"):
        check_shapes(TINY, 2, 6, [2, 9])
    with pytest.raises(ValueError, match="slots 0"):
        check_shapes(TINY, 0, 6, [2])
    assert padded_prompt(np.array([5, 6, 7]), (2, 4), 1, 2).tolist() == [[5, 6, 7, 0]]
    with pytest.raises(ValueError, match="prompt of 5 tokens"):
        padded_prompt(np.arange(5), (2, 4), 0, 2)
    with pytest.raises(ValueError, match="slot 2"):
        padded_prompt(np.arange(2), (2, 4), 2, 2)
    assert check_temperature(0) == 0.0
    for bad in (-0.5, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="temperature"):
            check_temperature(bad)


def test_sampling_depends_on_seed_request_and_position_only():
    logits = np.zeros((3, 50), np.float32)  # flat: the noise alone decides
    a = sampling.sample_numpy(logits, 1.0, 7, np.array([1, 1, 2]), np.array([4, 5, 4]))
    b = sampling.sample_numpy(logits[::-1], 1.0, 7, np.array([2, 1, 1]), np.array([4, 5, 4]))
    assert a.tolist() == b[::-1].tolist()  # the rows' order (their slots) changes nothing
    noise = sampling.gumbel_numpy(7, np.array([1, 1, 2, 1]), np.array([4, 5, 4, 4]), 50)
    assert np.array_equal(noise[0], noise[3])
    assert not np.array_equal(noise[0], noise[1]) and not np.array_equal(noise[0], noise[2])
    assert not np.array_equal(
        noise[0], sampling.gumbel_numpy(8, np.array([1]), np.array([4]), 50)[0]
    )
    # greedy at temperature 0, whatever the seeds
    peaked = np.eye(3, 50, 7, dtype=np.float32)
    assert sampling.sample_numpy(peaked, 0.0, 7, np.arange(3), np.arange(3)).tolist() == [7, 8, 9]


def test_gumbel_uniforms_stay_inside_the_open_interval():
    noise = sampling.gumbel_numpy(0, np.arange(64), np.arange(64), 4096)
    assert np.isfinite(noise).all()
    # The mean of a standard Gumbel is Euler's constant, 0.5772; 262144 draws: se 0.0025.
    assert abs(float(noise.mean()) - 0.5772) < 0.02
