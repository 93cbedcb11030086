"""A scenario's ``optimizer:`` block: the same optimizer is built in both frameworks (optax and
keras.optimizers). Rank 0, so the cells that build models read it without the scenario."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from bench.limits import MAX_RATE


class Optimizer(BaseModel):
    """The same optimizer is built in both frameworks (optax and keras.optimizers)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    name: Literal["sgd", "adam", "adamw"] = "sgd"
    # A step size or decay past MAX_RATE makes every model diverge on its first step.
    learning_rate: float = Field(0.01, gt=0, le=MAX_RATE)
    momentum: float = Field(0.9, ge=0, lt=1)
    weight_decay: float = Field(0.0, ge=0, le=MAX_RATE)
