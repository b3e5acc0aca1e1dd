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
``QuantEmbedding`` fake-quantizes its table row by row; ``quantize_modules`` swaps a model's Linear / Conv2d /
Embedding layers from a qcast recipe (the CLI's YAML / JSON).
"""
from __future__ import annotations

import copy
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


def _element_range(element: str) -> Tuple[float, float]:
    """The most negative and the largest value of a scale-free element (int4: -8, 7; ternary: -1, 1)."""
    ends = _qcast.cast(np.array([-3.0e38, 3.0e38], dtype=np.float32), element, axis=-1, round="even", seed=0, threads=None)
    return float(ends[0]), float(ends[1])


def _sum_to(g: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """Sums a broadcast gradient back to `shape` (the dimensions that were broadcast)."""
    while g.dim() > len(shape):
        g = g.sum(0)
    for d, n in enumerate(shape):
        if n == 1 and g.shape[d] != 1:
            g = g.sum(d, keepdim=True)
    return g


class LsqQuant(torch.autograd.Function):
    """Learned Step Size Quantization (Esser et al., ICLR 2020): y = s * q(x / s), q the rounding of a
    scale-free qcast element (int4, int2, ternary, binary, e2m1, ...) to its values, s a learned scale of
    any shape that broadcasts to x (e.g. one per output channel). Backward, the paper's eq. 3 and 5, with
    v = x / s and the element's range [-Qn, Qp]:
      dy/dx = 1 where -Qn <= v <= Qp, else 0;
      dy/ds = q(v) - v inside, q(v) (the end value) outside, times `grad_scale` (the paper's
      g = 1 / sqrt(N * Qp), N the elements sharing one scale), summed over the elements that share it."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, s: torch.Tensor, element: str, grad_scale: float) -> torch.Tensor:  # type: ignore[override]
        v = (x / s).detach()
        q = torch.from_numpy(_qcast.cast(_to_numpy_f32(v), element, axis=-1, round="even", seed=0, threads=None)).to(v.dtype)
        lo, hi = _element_range(element)
        inside = (v >= lo) & (v <= hi)
        ctx.save_for_backward(q, v, inside)
        ctx.s_shape, ctx.grad_scale = s.shape, grad_scale
        return q * s

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor):  # type: ignore[override]
        q, v, inside = ctx.saved_tensors
        gx = grad * inside.to(grad.dtype)
        gs = _sum_to(grad * torch.where(inside, q - v, q) * ctx.grad_scale, ctx.s_shape)
        return gx, gs, None, None


def lsq_quant(x: torch.Tensor, s: torch.Tensor, element: FormatLike, grad_scale: float = 1.0) -> torch.Tensor:
    """LSQ fake-quantization of x with learned scale s (LsqQuant); `element` a scale-free format."""
    name = element.name if isinstance(element, Format) else str(element)
    if Format(name).scaling != "none":
        raise Error(f"lsq_quant: '{name}' has its own scale; give the element alone (e.g. int4, ternary, e2m1)")
    return LsqQuant.apply(x, s, name, grad_scale)


class _WeightQuant:
    """The weight side shared by QuantLinear and QuantConv2d: fake-quant in qcast's [out, in] view (rows =
    output channels, blocks along the inputs), either with the format's own scales (STE) or, with
    lsq=True, with the format's element and one learned scale per output channel (LSQ, initialised as
    the paper does: 2 mean|w| / sqrt(Qp) per channel)."""

    def _init_weight_quant(self, lsq: bool) -> None:
        self.lsq = lsq
        self.weight_scale = None
        if lsq and self.weight_format is not None:
            self.lsq_element = Format(self.weight_format).element
            lo, hi = _element_range(self.lsq_element)
            self.lsq_qp = hi
            w2 = self.weight.detach().reshape(self.weight.shape[0], -1)
            init = 2.0 * w2.abs().mean(1, keepdim=True) / (hi ** 0.5)
            self.weight_scale = torch.nn.Parameter(init.clamp_min(1e-8))

    def quantized_weight(self) -> torch.Tensor:
        """The weight the forward pass computes with (same shape as `weight`)."""
        w = self.weight
        if self.weight_format is None:
            return w
        w2 = w.reshape(w.shape[0], -1)
        if self.weight_scale is not None:
            q = lsq_quant(w2, self.weight_scale, self.lsq_element, 1.0 / (w2.shape[1] * self.lsq_qp) ** 0.5)
        else:
            q = fake_quant(w2, self.weight_format, axis=1, round=self.round, ste=self.ste)
        return q.reshape(w.shape)


class QuantLinear(torch.nn.Linear, _WeightQuant):
    """nn.Linear whose weight (blocks along in_features) and input (blocks along the last axis) are
    fake-quantized in the forward pass; None leaves that operand in full precision. lsq=True learns one
    weight scale per output feature (LSQ) on the weight format's element instead of its own scales."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, *,
                 weight_format: Optional[FormatLike] = None, act_format: Optional[FormatLike] = None,
                 round: str = "even", ste: str = "identity", lsq: bool = False, **kw: Any) -> None:
        super().__init__(in_features, out_features, bias=bias, **kw)
        self.weight_format, self.act_format, self.round, self.ste = weight_format, act_format, round, ste
        self._init_weight_quant(lsq)

    @classmethod
    def from_float(cls, m: torch.nn.Linear, weight_format: Optional[FormatLike],
                   act_format: Optional[FormatLike], **kw: Any) -> "QuantLinear":
        q = cls(m.in_features, m.out_features, m.bias is not None, weight_format=weight_format,
                act_format=act_format, device=m.weight.device, dtype=m.weight.dtype, **kw)
        with torch.no_grad():
            q.weight.copy_(m.weight)
            if m.bias is not None:
                q.bias.copy_(m.bias)
        q._init_weight_quant(q.lsq)  # LSQ scales from the copied weights
        return q

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.act_format is not None:
            x = fake_quant(x, self.act_format, axis=-1, round=self.round, ste=self.ste)
        return torch.nn.functional.linear(x, self.quantized_weight(), self.bias)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", weight_format={self.weight_format}, act_format={self.act_format}, lsq={self.lsq}"


class QuantConv2d(torch.nn.Conv2d, _WeightQuant):
    """nn.Conv2d whose weight and input (blocks along the channels of NCHW, axis 1) are fake-quantized in
    the forward pass. The weight [out, in/groups, kh, kw] is quantized in the [out, in/groups * kh * kw]
    view, blocks along its rows, as qcast eval / quantize / stats quantize a convolution's weight: a model
    trained here is evaluated by qcast with the same weight values. lsq=True: one learned scale per output
    channel (LSQ) on the weight format's element."""

    def __init__(self, *args: Any, weight_format: Optional[FormatLike] = None,
                 act_format: Optional[FormatLike] = None, round: str = "even", ste: str = "identity",
                 lsq: bool = False, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.weight_format, self.act_format, self.round, self.ste = weight_format, act_format, round, ste
        self._init_weight_quant(lsq)

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
        q._init_weight_quant(q.lsq)  # LSQ scales from the copied weights
        return q

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.act_format is not None:
            x = fake_quant(x, self.act_format, axis=1, round=self.round, ste=self.ste)
        return self._conv_forward(x, self.quantized_weight(), self.bias)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", weight_format={self.weight_format}, act_format={self.act_format}, lsq={self.lsq}"


class QuantEmbedding(torch.nn.Embedding, _WeightQuant):
    """nn.Embedding whose table [num_embeddings, embedding_dim] is fake-quantized row by row (blocks along the
    embedding dimension, as qcast quantizes a LLaMA token embedding and its tied classifier) before the lookup;
    the gradient reaches every row through the STE. lsq=True learns one scale per row (LSQ) on the weight
    format's element. An embedding has no activation input: only the weight format applies."""

    def __init__(self, num_embeddings: int, embedding_dim: int, *, weight_format: Optional[FormatLike] = None,
                 round: str = "even", ste: str = "identity", lsq: bool = False, **kw: Any) -> None:
        super().__init__(num_embeddings, embedding_dim, **kw)
        self.weight_format, self.round, self.ste = weight_format, round, ste
        self._init_weight_quant(lsq)

    @classmethod
    def from_float(cls, m: torch.nn.Embedding, weight_format: Optional[FormatLike], **kw: Any) -> "QuantEmbedding":
        q = cls(m.num_embeddings, m.embedding_dim, weight_format=weight_format, padding_idx=m.padding_idx,
                max_norm=m.max_norm, norm_type=m.norm_type, scale_grad_by_freq=m.scale_grad_by_freq, sparse=m.sparse,
                device=m.weight.device, dtype=m.weight.dtype, **kw)
        with torch.no_grad():
            q.weight.copy_(m.weight)
        q._init_weight_quant(q.lsq)
        return q

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.embedding(x, self.quantized_weight(), self.padding_idx, self.max_norm, self.norm_type,
                                             self.scale_grad_by_freq, self.sparse)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", weight_format={self.weight_format}, lsq={self.lsq}"


def _recipe_path(recipe: Union[str, os.PathLike, Mapping[str, Any]], tmp: str) -> str:
    """A recipe file's path; a dict is written as JSON into the directory `tmp` first."""
    if isinstance(recipe, Mapping):
        path = os.path.join(tmp, "recipe.json")
        with open(path, "w", encoding="utf-8") as f:
            json.dump(dict(recipe), f)
        return path
    return os.fspath(recipe)


def _load_recipe(recipe: Union[str, os.PathLike, Mapping[str, Any]]) -> "_qcast.Recipe":
    with tempfile.TemporaryDirectory(prefix="qcast-recipe-") as tmp:
        return _qcast.load_recipe(_recipe_path(recipe, tmp))


def replace_module(model: torch.nn.Module, name: str, new: torch.nn.Module) -> None:
    """Puts `new` where model.get_submodule(name) is (a name from model.named_modules())."""
    parent_name, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, child, new)


def quantize_modules(model: torch.nn.Module, recipe: Union[str, os.PathLike, Mapping[str, Any]],
                     round: str = "even", ste: str = "identity", lsq: bool = False) -> Dict[str, Tuple[Optional[str], Optional[str]]]:
    """Replaces the model's nn.Linear / nn.Conv2d / nn.Embedding layers (in place) by QuantLinear / QuantConv2d /
    QuantEmbedding with the formats a qcast recipe gives them (a YAML / JSON file as `qcast eval --recipe`
    takes, or the same as a dict; embeddings take the weight format only). Layer globs in `layers:` and `skip:` match the module names of model.named_modules()
    ("features.0", "fc"). Returns {module name: (weight format, activation format)} of the swapped layers
    (None = full precision). Static activation observers are not supported here (qcast.Error). lsq=True:
    learned per-output-channel weight scales (LSQ) on each weight format's element."""
    r = _load_recipe(recipe)
    done: Dict[str, Tuple[Optional[str], Optional[str]]] = {}
    for name, module in list(model.named_modules()):
        if not name or isinstance(module, (QuantLinear, QuantConv2d, QuantEmbedding)):
            continue
        if isinstance(module, torch.nn.Embedding):
            wf, af = r.formats_for(name)[0] or None, None
            if wf is None:
                continue
            q = QuantEmbedding.from_float(module, wf, round=round, ste=ste, lsq=lsq)
        elif isinstance(module, (torch.nn.Linear, torch.nn.Conv2d)):
            w, a, observer = r.formats_for(name)
            if observer:
                raise Error(f"layer '{name}': static activation observers ('{observer}') need calibration; "
                            "quantize_modules takes dynamic activation formats only")
            wf, af = (w or None), (a or None)
            if wf is None and af is None:
                continue
            cls = QuantLinear if isinstance(module, torch.nn.Linear) else QuantConv2d
            q = cls.from_float(module, wf, af, round=round, ste=ste, lsq=lsq)
        else:
            continue
        replace_module(model, name, q)
        done[name] = (wf, af)
    return done


def dequantized_copy(model: torch.nn.Module) -> torch.nn.Module:
    """A deep copy of `model` with every QuantLinear / QuantConv2d / QuantEmbedding back to its plain torch
    class, holding the same (full-precision, master) parameters: what torch.onnx.export can trace."""
    plain = copy.deepcopy(model)
    for name, m in list(plain.named_modules()):
        base = {QuantLinear: torch.nn.Linear, QuantConv2d: torch.nn.Conv2d, QuantEmbedding: torch.nn.Embedding}.get(type(m))
        if base is None:
            continue
        if getattr(m, "weight_scale", None) is not None:
            raise Error(f"layer '{name}' learned its scales (lsq=True): its weights are not the format's own quantization; "
                        "export m.quantized_weight() values instead")
        m.__class__ = base  # the parameters and buffers are the base class's; the extra attributes are inert
        for attr in ("weight_format", "act_format", "round", "ste", "lsq", "weight_scale", "lsq_element", "lsq_qp"):
            m.__dict__.pop(attr, None)
    return plain


def export(model: torch.nn.Module, example: torch.Tensor, onnx_path: Union[str, os.PathLike],
           recipe: Optional[Union[str, os.PathLike, Mapping[str, Any]]] = None,
           packed_path: Optional[Union[str, os.PathLike]] = None, opset: int = 13, **onnx_kw: Any) -> Dict[str, Any]:
    """Exports a model trained with quantize_modules for qcast's commands:

    * `onnx_path`: the model with its full-precision master weights (torch.onnx.export of dequantized_copy;
      batch norms kept as nodes so that qcast quantizes the weights training saw, see examples/qat_vs_ptq.py);
      `qcast eval / infer / cost --recipe R` of it compute what the QAT model computes.
    * with `recipe` (the one given to quantize_modules) and `packed_path`: qcast's packed safetensors, made by
      `qcast quantize onnx_path --recipe R --method rtn` (rtn is quantize_modules' own fake-quant, so the codes
      are the weights training computed with); `qcast eval packed_path` needs no recipe.

    Returns the quantize report (empty without packed_path). LSQ models (learned scales) are refused."""
    plain = dequantized_copy(model)
    plain.eval()  # a copy: the caller's model keeps its mode
    kw = dict(opset_version=opset, input_names=["x"], output_names=["y"], dynamic_axes={"x": {0: "n"}, "y": {0: "n"}},
              training=torch.onnx.TrainingMode.PRESERVE, do_constant_folding=False)  # qcast folds constants itself
    kw.update(onnx_kw)
    torch.onnx.export(plain, example, os.fspath(onnx_path), **kw)
    if packed_path is None:
        return {}
    if recipe is None:
        raise Error("export: packed_path needs the recipe the model was quantized with")
    from ._files import quantize_model
    with tempfile.TemporaryDirectory(prefix="qcast-export-") as tmp:
        rpath = _recipe_path(recipe, tmp)
        # rtn reads no calibration statistics; quantize still takes a dataset: the example batch.
        x = os.path.join(tmp, "x.npy")
        labels = os.path.join(tmp, "labels.npy")
        np.save(x, _to_numpy_f32(example))
        np.save(labels, np.zeros(example.shape[0], np.int64))
        return quantize_model(os.fspath(onnx_path), os.fspath(packed_path), f"npy:{x},{labels}", method="rtn",
                              recipe=rpath, calib_samples=1)


__all__ = ["FakeQuant", "LsqQuant", "QuantConv2d", "QuantEmbedding", "QuantLinear", "clip_mask", "dequantized_copy", "export",
           "fake_quant", "lsq_quant", "quantize_modules", "replace_module"]
