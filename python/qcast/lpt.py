"""Low-precision training (LPT) on qcast's formats.

A Linear layer computes three GEMMs per training step: the forward ``Y = X W^T`` (inner dimension: the input
features K), and in the backward pass ``dX = dY W`` (inner: the output features N) and ``dW = dY^T X``
(inner: the tokens T). Hardware with MX / block formats multiplies operands whose blocks run along the
*inner* dimension, so each GEMM quantizes both of its operands along its own inner dimension: W is quantized
along K for the forward pass and along N for dX; X along K forward and along T for dW; dY along N for dX and
along T for dW. ``LptLinear`` does exactly that with qcast's kernels (the formats are qcast names: "mxfp4",
"mxfp8", "int8@fp32/ch0", ...; each operand's format is set separately, as microxcaling's specs do), and
accumulates in float32.

Transforms (``LptConfig.transform``), applied per GEMM to both operands along the inner dimension before
quantization:

* ``"none"``: quantize as is.
* ``"hadamard"``: the inner Hadamard transform (IHT): both operands are multiplied by the same block-diagonal
  orthonormal Walsh-Hadamard matrix H (blocks of ``block`` along the inner dimension, zero-padded to a multiple
  of it), so ``(A H)(B H)^T = A B^T`` in exact arithmetic while outliers that sit on a few inner indices are
  spread over their block.
* ``"adahop"``: AdaHOP (Kim et al., arXiv 2604.02525): each operand's outlier pattern is classified as
  ``"column"`` (outliers on a few inner indices: IHT's smoothing direction), ``"row"`` (a few outer rows:
  the per-row block scales of an MX operand already isolate them) or ``"none"``; a GEMM whose operand has
  column outliers beyond what one Hadamard block can absorb gets IHT plus outlier extraction (OE): those
  inner indices are taken out of both operands and multiplied in a high-precision path (bfloat16 operands,
  float32 accumulation), the rest goes through IHT and the low-precision formats; every other GEMM gets IHT.
  Only the paper's abstract was available to us: the classification statistic (largest / median of the
  per-index max |value|), the thresholds and the OE budget are our choices and are parameters here.

``LptLinear`` keeps the decisions it made (``stats``), so an experiment can report which strategy each GEMM
ran. Everything is computed on the CPU through numpy (like ``qcast.torch.fake_quant``) and is deterministic.
"""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

import torch

from . import _qcast
from ._qcast import Error, Format
from .torch import replace_module

GEMMS = ("fwd", "dgrad", "wgrad")


@dataclass(frozen=True)
class LptConfig:
    """Formats of one Linear layer's GEMM operands (None = float32) and the transform (module doc).

    weight / act: W and X in the forward GEMM; grad: dY in both backward GEMMs; weight_bp / act_bp: W in
    dX = dY W and X in dW = dY^T X (None: the forward formats). block: the Hadamard block size.
    AdaHOP: an operand's pattern is "column" / "row" when the largest per-inner-index (per-outer-row) max |value|
    exceeds ``outlier_ratio`` times the median one; OE takes the inner indices above that bound in either
    operand, at most ``oe_fraction`` of the inner dimension (at least one), largest first."""
    weight: Optional[str] = None
    act: Optional[str] = None
    grad: Optional[str] = None
    weight_bp: Optional[str] = None
    act_bp: Optional[str] = None
    transform: str = "none"
    block: int = 32
    outlier_ratio: float = 8.0
    oe_fraction: float = 1.0 / 32.0
    round: str = "even"
    threads: Optional[int] = None

    def __post_init__(self) -> None:
        if self.transform not in ("none", "hadamard", "adahop"):
            raise Error(f"LptConfig: unknown transform '{self.transform}' (none, hadamard, adahop)")
        if self.block < 1 or self.block & (self.block - 1):
            raise Error(f"LptConfig: the Hadamard block must be a power of two, not {self.block}")
        if not (self.outlier_ratio > 1.0) or not (0.0 < self.oe_fraction <= 1.0):
            raise Error("LptConfig: outlier_ratio must be > 1 and oe_fraction in (0, 1]")
        for f in (self.weight, self.act, self.grad, self.weight_bp, self.act_bp):
            if f is not None:
                Format(f)  # raises qcast.Error with the parser's message for a bad name

    @staticmethod
    def uniform(fmt: Optional[str], transform: str = "none", **kw: Any) -> "LptConfig":
        """Weights, activations and gradients all in `fmt`."""
        return LptConfig(weight=fmt, act=fmt, grad=fmt, transform=transform, **kw)


@dataclass
class GemmStats:
    """What one GEMM site (layer x fwd/dgrad/wgrad) did: calls per strategy, operand patterns, extracted
    inner indices (summed over calls)."""
    strategy: Counter = field(default_factory=Counter)
    patterns: Counter = field(default_factory=Counter)  # "column/none" = (operand A, operand B)
    extracted: int = 0
    calls: int = 0


_HADAMARD: Dict[int, torch.Tensor] = {}


def hadamard(n: int) -> torch.Tensor:
    """The orthonormal n x n Walsh-Hadamard matrix (Sylvester's construction, n a power of two)."""
    if n < 1 or n & (n - 1):
        raise Error(f"hadamard: {n} is not a power of two")
    if n not in _HADAMARD:
        h = torch.ones(1, 1, dtype=torch.float64)
        while h.shape[0] < n:
            h = torch.cat([torch.cat([h, h], 1), torch.cat([h, -h], 1)], 0)
        _HADAMARD[n] = (h / math.sqrt(n)).to(torch.float32)
    return _HADAMARD[n]


def block_hadamard(a: torch.Tensor, block: int) -> torch.Tensor:
    """a [outer, inner] times the block-diagonal Hadamard matrix along inner (inner a multiple of block)."""
    outer, inner = a.shape
    return (a.reshape(outer, inner // block, block) @ hadamard(block)).reshape(outer, inner)


def quantize(a: torch.Tensor, fmt: Optional[str], axis: int, cfg: LptConfig) -> torch.Tensor:
    """qcast.cast of a float32 CPU tensor along `axis` (None: a itself)."""
    if fmt is None:
        return a
    x = a.detach().contiguous().numpy()
    return torch.from_numpy(_qcast.cast(x, fmt, axis=axis, round=cfg.round, seed=0, threads=cfg.threads))


def pattern(a: torch.Tensor, ratio: float) -> Tuple[str, torch.Tensor]:
    """The outlier pattern of a [outer, inner] operand ("column", "row" or "none") and its per-inner-index
    max |value| divided by the median of those (the OE score)."""
    mag = a.abs()
    col = mag.amax(0)
    row = mag.amax(1)
    col_med = col.median().clamp_min(torch.finfo(torch.float32).tiny)
    row_med = row.median().clamp_min(torch.finfo(torch.float32).tiny)
    col_r = float(col.max() / col_med)
    row_r = float(row.max() / row_med)
    if max(col_r, row_r) < ratio:
        return "none", col / col_med
    return ("column" if col_r >= row_r else "row"), col / col_med


def _pad_inner(a: torch.Tensor, block: int) -> torch.Tensor:
    pad = (-a.shape[1]) % block
    return torch.nn.functional.pad(a, (0, pad)) if pad else a


def qgemm(a: torch.Tensor, b: torch.Tensor, fa: Optional[str], fb: Optional[str], cfg: LptConfig,
          stats: Optional[GemmStats] = None) -> torch.Tensor:
    """a [M, K] times b [N, K]^T (float32, CPU) with both operands quantized along K, after the configured
    transform (module doc). Returns float32 [M, N]."""
    if stats is not None:
        stats.calls += 1
    if cfg.transform == "none":
        if stats is not None:
            stats.strategy["plain"] += 1
        return quantize(a, fa, 1, cfg) @ quantize(b, fb, 1, cfg).t()
    high = None
    strategy = "IHT"
    if cfg.transform == "adahop":
        pa, score_a = pattern(a, cfg.outlier_ratio)
        pb, score_b = pattern(b, cfg.outlier_ratio)
        if stats is not None:
            stats.patterns[f"{pa}/{pb}"] += 1
        if "column" in (pa, pb):
            score = torch.maximum(score_a if pa == "column" else torch.zeros_like(score_a),
                                  score_b if pb == "column" else torch.zeros_like(score_b))
            budget = max(1, int(cfg.oe_fraction * a.shape[1]))
            # Largest scores first; ties by index (torch.sort is stable), so the choice is deterministic.
            order = torch.sort(-score, stable=True).indices
            picked = [int(i) for i in order[:budget] if score[i] >= cfg.outlier_ratio]
            if picked:
                idx = torch.tensor(sorted(picked), dtype=torch.long)
                # The high-precision path: bfloat16 operands (the paper's BF16 path), float32 products.
                ha = a[:, idx].to(torch.bfloat16).to(torch.float32)
                hb = b[:, idx].to(torch.bfloat16).to(torch.float32)
                high = ha @ hb.t()
                a = a.clone()
                b = b.clone()
                a[:, idx] = 0
                b[:, idx] = 0
                strategy = "IHT+OE"
                if stats is not None:
                    stats.extracted += len(picked)
    if stats is not None:
        stats.strategy[strategy] += 1
    a = block_hadamard(_pad_inner(a, cfg.block), cfg.block)
    b = block_hadamard(_pad_inner(b, cfg.block), cfg.block)
    out = quantize(a, fa, 1, cfg) @ quantize(b, fb, 1, cfg).t()
    return out + high if high is not None else out


class _LptLinearFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, w: torch.Tensor, bias: Optional[torch.Tensor], cfg: LptConfig,
                stats: Dict[str, GemmStats]) -> torch.Tensor:  # type: ignore[override]
        shape = x.shape
        x2 = x.detach().reshape(-1, shape[-1]).to(torch.float32).contiguous()
        w32 = w.detach().to(torch.float32).contiguous()
        y = qgemm(x2, w32, cfg.act, cfg.weight, cfg, stats.get("fwd"))
        if bias is not None:
            y = y + bias.detach().to(torch.float32)
        ctx.save_for_backward(x2, w32)
        ctx.cfg, ctx.stats, ctx.shape, ctx.has_bias = cfg, stats, shape, bias is not None
        ctx.dtypes = (x.dtype, w.dtype)
        return y.reshape(*shape[:-1], w.shape[0]).to(x.dtype)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor):  # type: ignore[override]
        x2, w32 = ctx.saved_tensors
        cfg: LptConfig = ctx.cfg
        g2 = grad.reshape(-1, grad.shape[-1]).to(torch.float32).contiguous()
        w_bp = cfg.weight_bp if cfg.weight_bp is not None else cfg.weight
        a_bp = cfg.act_bp if cfg.act_bp is not None else cfg.act
        gx = gw = gb = None
        if ctx.needs_input_grad[0]:  # dX [T, K] = dY [T, N] . W [N, K]: inner N
            gx = qgemm(g2, w32.t().contiguous(), cfg.grad, w_bp, cfg, ctx.stats.get("dgrad"))
            gx = gx.reshape(ctx.shape).to(ctx.dtypes[0])
        if ctx.needs_input_grad[1]:  # dW [N, K] = dY^T [N, T] . X [T, K]: inner T
            gw = qgemm(g2.t().contiguous(), x2.t().contiguous(), cfg.grad, a_bp, cfg, ctx.stats.get("wgrad"))
            gw = gw.to(ctx.dtypes[1])
        if ctx.has_bias and ctx.needs_input_grad[2]:
            gb = g2.sum(0)
        return gx, gw, gb, None, None


def lpt_linear(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor], cfg: LptConfig,
               stats: Optional[Dict[str, GemmStats]] = None) -> torch.Tensor:
    """F.linear(x, weight, bias) with the three GEMMs in low precision (module doc)."""
    return _LptLinearFn.apply(x, weight, bias, cfg, stats if stats is not None else {})


class LptLinear(torch.nn.Linear):
    """nn.Linear whose forward and backward GEMMs run in the formats of `config` (module doc). `stats` maps
    "fwd" / "dgrad" / "wgrad" to the GemmStats of this layer."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, *,
                 config: LptConfig = LptConfig(), **kw: Any) -> None:
        super().__init__(in_features, out_features, bias=bias, **kw)
        self.config = config
        self.stats: Dict[str, GemmStats] = {g: GemmStats() for g in GEMMS}

    @classmethod
    def from_float(cls, m: torch.nn.Linear, config: LptConfig) -> "LptLinear":
        q = cls(m.in_features, m.out_features, m.bias is not None, config=config,
                device=m.weight.device, dtype=m.weight.dtype)
        with torch.no_grad():
            q.weight.copy_(m.weight)
            if m.bias is not None:
                q.bias.copy_(m.bias)
        return q

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return lpt_linear(x, self.weight, self.bias, self.config, self.stats)

    def extra_repr(self) -> str:
        c = self.config
        return (super().extra_repr() + f", weight={c.weight}, act={c.act}, grad={c.grad}, "
                f"transform={c.transform}")


def swap_linears(model: torch.nn.Module, config: LptConfig, skip: Tuple[str, ...] = ()) -> List[str]:
    """Replaces every nn.Linear of `model` (in place) whose module name does not start with one of `skip`
    by an LptLinear with `config`; returns the names swapped, in model order."""
    done: List[str] = []
    for name, module in list(model.named_modules()):
        if not name or type(module) is not torch.nn.Linear or any(name.startswith(s) for s in skip):
            continue
        replace_module(model, name, LptLinear.from_float(module, config))
        done.append(name)
    return done


def strategy_summary(model: torch.nn.Module) -> Dict[str, Dict[str, Any]]:
    """Per GEMM kind (fwd / dgrad / wgrad), over every LptLinear of `model`: calls per strategy, operand
    pattern pairs, and the mean number of inner indices extracted per IHT+OE call."""
    out: Dict[str, Dict[str, Any]] = {}
    for g in GEMMS:
        strategy: Counter = Counter()
        patterns: Counter = Counter()
        extracted = 0
        for m in model.modules():
            if isinstance(m, LptLinear):
                s = m.stats[g]
                strategy.update(s.strategy)
                patterns.update(s.patterns)
                extracted += s.extracted
        oe = strategy.get("IHT+OE", 0)
        out[g] = {"strategy": dict(sorted(strategy.items())), "patterns": dict(sorted(patterns.items())),
                  "mean_extracted": extracted / oe if oe else 0.0}
    return out


__all__ = ["GEMMS", "GemmStats", "LptConfig", "LptLinear", "block_hadamard", "hadamard", "lpt_linear", "pattern",
           "qgemm", "quantize", "strategy_summary", "swap_linears"]
