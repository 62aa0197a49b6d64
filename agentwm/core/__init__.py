"""Tensor math with no model in it: transforms, returns, distributions and small nets."""

from agentwm.core.distributions import (
    categorical_entropy,
    categorical_kl,
    mode_onehot,
    sample_indices,
    sample_onehot,
    unimix_logits,
)
from agentwm.core.nets import MLP, ConvDecoder, ConvEncoder, init_output
from agentwm.core.returns import ReturnNormalizer, discount_weights, discounted_return, lambda_return
from agentwm.core.transforms import TwoHot, symexp, symlog

__all__ = [
    "MLP",
    "ConvDecoder",
    "ConvEncoder",
    "ReturnNormalizer",
    "TwoHot",
    "categorical_entropy",
    "categorical_kl",
    "discount_weights",
    "discounted_return",
    "init_output",
    "lambda_return",
    "mode_onehot",
    "sample_indices",
    "sample_onehot",
    "symexp",
    "symlog",
    "unimix_logits",
]
