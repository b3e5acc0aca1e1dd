"""PyTorch fake-quantization on qcast's kernels (through numpy; no libtorch link).

``fake_quant(x, fmt)`` quantizes and dequantizes a tensor in the forward pass (its values are exactly
``qcast.cast`` of ``x`` as float32, returned in ``x``'s dtype) and passes the gradient straight through
(the straight-through estimator, STE) in the backward pass:

* ``ste="identity"``: dL/dx = dL/dy everywhere;
* ``ste="clipped"``: dL/dx = dL/dy where x lies within the values its scale group can represent, 0 where
  the format saturated it. "Saturated" is measured exactly: x > 0 is clipped when rounding it *up* in the
  format still gives less than x (x < 0: rounding down still gives more), i.e. x is beyond the group's
  largest magnitude. (Scales do not depend on the rounding mode, so both casts use the same scales.)

float32, float16 and bfloat16 tensors (float16 / bfloat16 are widened exactly to float32, the result is
rounded back to the input's dtype), any strides (made contiguous), any device (computed on the CPU), any
block axis (``axis=``). ``QuantLinear`` / ``QuantConv2d`` fake-quantize their weight and input;
``quantize_modules`` swaps a model's Linear / Conv2d layers from a qcast recipe (the CLI's YAML / JSON).
"""
from __future__ import annotations

import fnmatch
import json
import os
import tempfile
from typing import Any, Dict, Mapping, Optional, Tuple, Union

import numpy as np
import torch

from . import _qcast
from ._qcast import Error, Format

FormatLike = Union[Format, str]
_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def _to_numpy_f32(x: torch.Tensor) -> np.ndarray:
    if x.dtype not in _DTYPES:
        raise TypeError(f"qcast.torch: expected a float32, float16 or bfloat16 tensor, got {x.dtype}")
    return x.detach().to(device="cpu", dtype=torch.float32).contiguous().numpy()


def _cast_np(x32: np.ndarray, fmt: FormatLike, axis: int, round: str, seed: int,
             threads: Optional[int]) -> np.ndarray:
    return _qcast.cast(x32, fmt, axis=axis, round=round, seed=seed, threads=threads)


def clip_mask(x: torch.Tensor, fmt: FormatLike, axis: int = -1, threads: Optional[int] = None) -> torch.Tensor:
    """True where x lies within what its scale group can represent (see the module doc), as a bool
    tensor on x's device. NaN inputs are False."""
    x32 = _to_numpy_f32(x)
    up = _cast_np(x32, fmt, axis, "ceil", 0, threads)
    down = _cast_np(x32, fmt, axis, "floor", 0, threads)
    inside = np.where(x32 >= 0, up >= x32, down <= x32)
    return torch.from_numpy(inside).to(x.device)


class FakeQuant(torch.autograd.Function):
    """y = cast(x) in the forward pass, the STE in the backward pass (see fake_quant)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, fmt: FormatLike, axis: int, round: str, ste: str, seed: int,
                threads: Optional[int]) -> torch.Tensor:  # type: ignore[override]
        if ste not in ("identity", "clipped"):
            raise ValueError(f"qcast.torch: unknown ste '{ste}' (identity, clipped)")
        x32 = _to_numpy_f32(x)
        y = _cast_np(x32, fmt, axis, round, seed, threads)
        if ste == "clipped":
            up = _cast_np(x32, fmt, axis, "ceil", 0, threads)
            down = _cast_np(x32, fmt, axis, "floor", 0, threads)
            ctx.save_for_backward(torch.from_numpy(np.where(x32 >= 0, up >= x32, down <= x32)).to(x.device))
        ctx.ste = ste
        return torch.from_numpy(y).to(device=x.device, dtype=x.dtype)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor):  # type: ignore[override]
        if ctx.ste == "clipped":
            (inside,) = ctx.saved_tensors
            grad = grad * inside.to(grad.dtype)
        return grad, None, None, None, None, None, None


def fake_quant(x: torch.Tensor, fmt: FormatLike, axis: int = -1, round: str = "even", ste: str = "identity",
               seed: int = 0, threads: Optional[int] = None) -> torch.Tensor:
    """Fake-quantize ``x`` in format ``fmt`` (a qcast.Format or a name / composition string).

    Forward: ``qcast.cast(x.float().numpy(), fmt, axis=axis, round=round)`` in x's dtype and device.
    Backward: the straight-through estimator, ``ste="identity"`` or ``"clipped"`` (module doc).
    ``axis`` is the block / channel axis when the format does not name one (negative counts from the end).
    """
    return FakeQuant.apply(x, fmt, axis, round, ste, seed, threads)


class QuantLinear(torch.nn.Linear):
    """nn.Linear whose weight (blocks along in_features) and input (blocks along the last axis) are
    fake-quantized in the forward pass; None leaves that operand in full precision."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, *,
                 weight_format: Optional[FormatLike] = None, act_format: Optional[FormatLike] = None,
                 round: str = "even", ste: str = "identity", **kw: Any) -> None:
        super().__init__(in_features, out_features, bias=bias, **kw)
        self.weight_format, self.act_format, self.round, self.ste = weight_format, act_format, round, ste

    @classmethod
    def from_float(cls, m: torch.nn.Linear, weight_format: Optional[FormatLike],
                   act_format: Optional[FormatLike], **kw: Any) -> "QuantLinear":
        q = cls(m.in_features, m.out_features, m.bias is not None, weight_format=weight_format,
                act_format=act_format, device=m.weight.device, dtype=m.weight.dtype, **kw)
        with torch.no_grad():
            q.weight.copy_(m.weight)
            if m.bias is not None:
                q.bias.copy_(m.bias)
        return q

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.act_format is not None:
            x = fake_quant(x, self.act_format, axis=-1, round=self.round, ste=self.ste)
        w = self.weight
        if self.weight_format is not None:
            w = fake_quant(w, self.weight_format, axis=1, round=self.round, ste=self.ste)
        return torch.nn.functional.linear(x, w, self.bias)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", weight_format={self.weight_format}, act_format={self.act_format}"


class QuantConv2d(torch.nn.Conv2d):
    """nn.Conv2d whose weight and input (blocks along the channels of NCHW, axis 1) are fake-quantized in
    the forward pass. The weight [out, in/groups, kh, kw] is quantized in the [out, in/groups * kh * kw]
    view, blocks along its rows, as qcast eval / quantize / stats quantize a convolution's weight: a model
    trained here is evaluated by qcast with the same weight values."""

    def __init__(self, *args: Any, weight_format: Optional[FormatLike] = None,
                 act_format: Optional[FormatLike] = None, round: str = "even", ste: str = "identity",
                 **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.weight_format, self.act_format, self.round, self.ste = weight_format, act_format, round, ste

    @classmethod
    def from_float(cls, m: torch.nn.Conv2d, weight_format: Optional[FormatLike],
                   act_format: Optional[FormatLike], **kw: Any) -> "QuantConv2d":
        q = cls(m.in_channels, m.out_channels, m.kernel_size, stride=m.stride, padding=m.padding,
                dilation=m.dilation, groups=m.groups, bias=m.bias is not None, padding_mode=m.padding_mode,
                weight_format=weight_format, act_format=act_format, device=m.weight.device,
                dtype=m.weight.dtype, **kw)
        with torch.no_grad():
            q.weight.copy_(m.weight)
            if m.bias is not None:
                q.bias.copy_(m.bias)
        return q

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.act_format is not None:
            x = fake_quant(x, self.act_format, axis=1, round=self.round, ste=self.ste)
        w = self.weight
        if self.weight_format is not None:
            w2 = fake_quant(w.reshape(w.shape[0], -1), self.weight_format, axis=1, round=self.round, ste=self.ste)
            w = w2.reshape(w.shape)
        return self._conv_forward(x, w, self.bias)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", weight_format={self.weight_format}, act_format={self.act_format}"


def _load_recipe(recipe: Union[str, os.PathLike, Mapping[str, Any]]) -> "_qcast.Recipe":
    if isinstance(recipe, Mapping):
        with tempfile.TemporaryDirectory(prefix="qcast-recipe-") as tmp:
            path = os.path.join(tmp, "recipe.json")
            with open(path, "w", encoding="utf-8") as f:
                json.dump(dict(recipe), f)
            return _qcast.load_recipe(path)
    return _qcast.load_recipe(os.fspath(recipe))


def quantize_modules(model: torch.nn.Module, recipe: Union[str, os.PathLike, Mapping[str, Any]],
                     round: str = "even", ste: str = "identity") -> Dict[str, Tuple[Optional[str], Optional[str]]]:
    """Replaces the model's nn.Linear / nn.Conv2d layers (in place) by QuantLinear / QuantConv2d with the
    formats a qcast recipe gives them (a YAML / JSON file as `qcast eval --recipe` takes, or the same as a
    dict). Layer globs in `layers:` and `skip:` match the module names of model.named_modules()
    ("features.0", "fc"). Returns {module name: (weight format, activation format)} of the swapped layers
    (None = full precision). Static activation observers are not supported here (qcast.Error)."""
    r = _load_recipe(recipe)
    done: Dict[str, Tuple[Optional[str], Optional[str]]] = {}
    for name, module in list(model.named_modules()):
        if not name or not isinstance(module, (torch.nn.Linear, torch.nn.Conv2d)) or isinstance(module, (QuantLinear, QuantConv2d)):
            continue
        w, a, observer = r.formats_for(name)
        if observer:
            raise Error(f"layer '{name}': static activation observers ('{observer}') need calibration; "
                        "quantize_modules takes dynamic activation formats only")
        wf, af = (w or None), (a or None)
        if wf is None and af is None:
            continue
        cls = QuantLinear if isinstance(module, torch.nn.Linear) else QuantConv2d
        q = cls.from_float(module, wf, af, round=round, ste=ste)
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, q)
        done[name] = (wf, af)
    return done


__all__ = ["FakeQuant", "QuantConv2d", "QuantLinear", "clip_mask", "fake_quant", "quantize_modules"]
