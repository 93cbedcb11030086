"""ResNet v1.5 image classifier (He et al. 2016, with the stride-2 3x3 convolution of torchvision
and NVIDIA's "v1.5"): the convolutional workload teams size GPUs and TPUs for.

Architecture (identical in both twins, NHWC, TensorFlow's "SAME" padding):
    stem    imagenet: 7x7/2 conv (w) + BN + ReLU, 3x3/2 max pool;  cifar: 3x3/1 conv + BN + ReLU
    stages  4 stages of ``BLOCKS[depth]`` blocks with ``w, 2w, 4w, 8w`` filters (w = ``width``);
            the first block of stages 2-4 has stride 2. Basic block (depth 18/34): 3x3 conv, BN,
            ReLU, 3x3 conv, BN. Bottleneck (depth >= 50): 1x1 (f), 3x3 (f, the stride: v1.5),
            1x1 (4f), each with BN, ReLU between. A 1x1 conv + BN projects the shortcut where the
            shape changes; ReLU after the residual add.
    head    global average pool, dense ``num_classes`` logits (float32, as Keras recommends for
            the last layer under mixed precision).
Convolutions have no bias (batch norm follows); He-normal kernels. Batch norm uses momentum
0.9 and epsilon 1e-5 in both twins (Keras' defaults are 0.99/1e-3, Flax's 0.99/1e-5, so both
are set), computed in float32 under bfloat16 mixed precision as both frameworks do. In JAX the
moving statistics live in the ``batch_stats`` collection.

Layer names match across twins (``stage2_block0/conv1``...), so weights transfer by name.

FLOPs per example (a multiply-add counts 2; batch norm, ReLU, pooling and adds are ignored,
they are O(activations) against O(activations x k^2 x C_in)):
    conv(n x n -> m x m, k, stride s, C_in -> C_out) = 2 * C_in * C_out * taps(n,k,s)^2
    where taps(n,k,s) = sum over the m output positions of the kernel taps that land on real
    (unpadded) input: multiplications by SAME-padding zeros are not counted, as XLA's cost
    analysis does not count them. (Counting them, the usual "k^2 per output" convention, adds
    ~2% at 224x224 but up to 9x on a 1x1 feature map: a 3x3 kernel at 32x32 with the ImageNet
    stem.)
    predict = sum over every conv of conv(...) + 2 * C_final * num_classes
    train   = 3 * predict - conv(stem)
    (backward = two convolutions per forward one: gradient of the input and of the kernel;
    the stem's input gradient, the image's, is never computed.)
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from bench.limits import MAX_IMAGE_SIZE, MAX_VOCAB, MAX_WIDTH, count
from bench.modeldef import DataSpec, FeatureSpec

DESCRIPTION = "ResNet v1.5 (depth 18/34/50/101/152, batch norm) image classifier, NHWC"

BLOCKS = {
    18: (2, 2, 2, 2),
    34: (3, 4, 6, 3),
    50: (3, 4, 6, 3),
    101: (3, 4, 23, 3),
    152: (3, 8, 36, 3),
}
BOTTLENECK_FROM = 50  # depth 50 and deeper use bottleneck blocks
EXPANSION = 4  # a bottleneck block's output channels over its inner width
BN_MOMENTUM = 0.9
BN_EPSILON = 1e-5


class Args(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    depth: Literal[18, 34, 50, 101, 152] = 50
    image_size: count(MAX_IMAGE_SIZE, ge=8) = Field(224, description="height = width, in pixels")
    width: count(MAX_WIDTH) = Field(64, description="filters of the first stage (64 in the paper)")
    num_classes: count(MAX_VOCAB, ge=2) = 1000
    stem: Literal["imagenet", "cifar"] = Field(
        "imagenet", description="imagenet: 7x7/2 conv + max pool; cifar: 3x3/1 conv, no pool"
    )


def data_spec(args: Args) -> DataSpec:
    image = FeatureSpec((args.image_size, args.image_size, 3), "float32")
    return DataSpec(features={"image": image}, task="classification", num_outputs=args.num_classes)


@dataclass(frozen=True)
class Conv:
    """One convolution of the network: where it sits and the shapes it sees."""

    name: str  # block-relative name ("conv1", "proj_conv") or "stem_conv"
    kernel: int
    stride: int
    c_in: int
    c_out: int
    size_in: int  # input height = width


@dataclass(frozen=True)
class Block:
    name: str  # "stage1_block0"
    filters: int  # inner width f
    stride: int
    convs: tuple[Conv, ...]
    project: bool  # the shortcut is a 1x1 conv + BN


def same_out(n: int, stride: int) -> int:
    return -(-n // stride)  # ceil(n / stride): SAME padding


def taps(n: int, k: int, s: int) -> int:
    """Kernel taps that land on real input, summed over the outputs of one spatial axis.

    SAME padding (TensorFlow's, also XLA's and Flax's): total = max((m-1)s + k - n, 0) zeros,
    total // 2 before the input and the rest after it.
    """
    m = same_out(n, s)
    before = max((m - 1) * s + k - n, 0) // 2
    taps = 0
    for o in range(m):
        first = o * s - before
        taps += min(first + k, n) - max(first, 0)
    return taps


def conv_flops(conv: Conv) -> float:
    return 2.0 * conv.c_in * conv.c_out * taps(conv.size_in, conv.kernel, conv.stride) ** 2


def stem(args: Args) -> tuple[Conv, int]:
    """The stem convolution and the feature-map size the first stage sees."""
    if args.stem == "cifar":
        return Conv("stem_conv", 3, 1, 3, args.width, args.image_size), args.image_size
    conv = Conv("stem_conv", 7, 2, 3, args.width, args.image_size)
    return conv, same_out(same_out(args.image_size, 2), 2)  # conv /2, max pool /2


def blocks(args: Args) -> Iterator[Block]:
    """Every residual block in order, with the shapes its convolutions see (for FLOPs)."""
    bottleneck = args.depth >= BOTTLENECK_FROM
    expansion = EXPANSION if bottleneck else 1
    _, size = stem(args)
    c_in = args.width
    for stage, blocks in enumerate(BLOCKS[args.depth]):
        filters = args.width * 2**stage
        for index in range(blocks):
            stride = 2 if stage > 0 and index == 0 else 1
            c_out = filters * expansion
            out = same_out(size, stride)
            if bottleneck:
                convs = [
                    Conv("conv1", 1, 1, c_in, filters, size),
                    Conv("conv2", 3, stride, filters, filters, size),
                    Conv("conv3", 1, 1, filters, c_out, out),
                ]
            else:
                convs = [
                    Conv("conv1", 3, stride, c_in, filters, size),
                    Conv("conv2", 3, 1, filters, filters, out),
                ]
            project = stride != 1 or c_in != c_out
            if project:
                convs.append(Conv("proj_conv", 1, stride, c_in, c_out, size))
            yield Block(f"stage{stage + 1}_block{index}", filters, stride, tuple(convs), project)
            c_in, size = c_out, out


def final_channels(args: Args) -> int:
    return args.width * 8 * (EXPANSION if args.depth >= BOTTLENECK_FROM else 1)


def flops_per_example(args: Args, workload: str) -> float:
    stem_conv, _ = stem(args)
    forward = conv_flops(stem_conv) + 2.0 * final_channels(args) * args.num_classes
    forward += sum(conv_flops(c) for b in blocks(args) for c in b.convs)
    return 3.0 * forward - conv_flops(stem_conv) if workload == "train" else forward


def build_tf(args: Args) -> Any:
    import keras

    def conv(spec: Conv, name: str | None = None) -> Any:
        return keras.layers.Conv2D(
            spec.c_out,
            spec.kernel,
            strides=spec.stride,
            padding="same",
            use_bias=False,
            kernel_initializer="he_normal",
            name=name or spec.name,
        )

    def norm(name: str) -> Any:
        return keras.layers.BatchNormalization(momentum=BN_MOMENTUM, epsilon=BN_EPSILON, name=name)

    class ResidualBlock(keras.layers.Layer):
        def __init__(self, block: Block) -> None:
            super().__init__(name=block.name)
            self.project = block.project
            self.convs = [conv(c) for c in block.convs if c.name != "proj_conv"]
            self.norms = [norm(f"bn{i + 1}") for i in range(len(self.convs))]
            if block.project:
                self.proj_conv = conv(block.convs[-1])
                self.proj_bn = norm("proj_bn")

        def call(self, x: Any, training: bool = False) -> Any:
            shortcut = x
            if self.project:
                shortcut = self.proj_bn(self.proj_conv(x), training=training)
            for i, (c, n) in enumerate(zip(self.convs, self.norms, strict=True)):
                x = n(c(x), training=training)
                if i < len(self.convs) - 1:
                    x = keras.activations.relu(x)
            return keras.activations.relu(x + shortcut)

    class ResNet(keras.Model):
        def __init__(self) -> None:
            super().__init__(name="resnet")
            stem_conv, _ = stem(args)
            self.stem_conv = conv(stem_conv)
            self.stem_bn = norm("stem_bn")
            self.pool = (
                keras.layers.MaxPooling2D(3, 2, padding="same", name="stem_pool")
                if args.stem == "imagenet"
                else None
            )
            self.blocks = [ResidualBlock(b) for b in blocks(args)]
            self.head = keras.layers.Dense(args.num_classes, dtype="float32", name="head")

        def call(self, features: dict, training: bool = False) -> Any:
            x = keras.activations.relu(
                self.stem_bn(self.stem_conv(features["image"]), training=training)
            )
            if self.pool is not None:
                x = self.pool(x)
            for block in self.blocks:
                x = block(x, training=training)
            x = keras.ops.mean(x, axis=(1, 2))
            return self.head(x)

    return ResNet()


def build_jax(args: Args, dtype: Any) -> Any:
    import flax.linen as nn
    import jax.numpy as jnp

    # Keras' "he_normal": truncated normal, variance 2 / fan_in.
    he_normal = nn.initializers.variance_scaling(2.0, "fan_in", "truncated_normal")

    def conv(spec: Conv, name: str | None = None) -> Any:
        return nn.Conv(
            spec.c_out,
            (spec.kernel, spec.kernel),
            strides=(spec.stride, spec.stride),
            padding="SAME",
            use_bias=False,
            kernel_init=he_normal,
            dtype=dtype,
            param_dtype=jnp.float32,
            name=name or spec.name,
        )

    def norm(name: str, train: bool) -> Any:
        # Two-pass variance, as Keras computes it (Flax's default is E[x^2] - E[x]^2).
        return nn.BatchNorm(
            use_running_average=not train,
            momentum=BN_MOMENTUM,
            epsilon=BN_EPSILON,
            use_fast_variance=False,
            dtype=dtype,
            param_dtype=jnp.float32,
            name=name,
        )

    class ResidualBlock(nn.Module):
        block: Block

        @nn.compact
        def __call__(self, x: Any, train: bool) -> Any:
            shortcut = x
            if self.block.project:
                shortcut = norm("proj_bn", train)(conv(self.block.convs[-1])(x))
            convs = [c for c in self.block.convs if c.name != "proj_conv"]
            for i, c in enumerate(convs):
                x = norm(f"bn{i + 1}", train)(conv(c)(x))
                if i < len(convs) - 1:
                    x = nn.relu(x)
            return nn.relu(x + shortcut)

    class ResNet(nn.Module):
        @nn.compact
        def __call__(self, features: dict, train: bool = False) -> Any:
            stem_conv, _ = stem(args)
            x = features["image"].astype(dtype)
            x = nn.relu(norm("stem_bn", train)(conv(stem_conv)(x)))
            if args.stem == "imagenet":
                x = nn.max_pool(x, (3, 3), strides=(2, 2), padding="SAME")
            for block in blocks(args):
                x = ResidualBlock(block, name=block.name)(x, train)
            x = jnp.mean(x, axis=(1, 2))
            return nn.Dense(
                args.num_classes,
                kernel_init=nn.initializers.glorot_uniform(),  # Keras' Dense default
                dtype=jnp.float32,
                param_dtype=jnp.float32,
                name="head",
            )(x)

    return ResNet()
