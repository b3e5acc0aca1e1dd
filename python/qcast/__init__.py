"""qcast: bit-exact number formats and fake-quantization for numpy (and PyTorch via ``qcast.torch``).

numpy in, numpy out, the same kernels as the ``qcast`` CLI, bit for bit::

    import numpy as np, qcast
    x = np.random.default_rng(0).standard_normal((64, 256), dtype=np.float32)
    y = qcast.cast(x, "mxfp4")                  # == `qcast cast x.npy y.npy --format mxfp4`
    e = qcast.encode(x, "mxfp4")                # packed codes + scales
    assert (qcast.decode(e) == y).all()
    print(qcast.stats(x, "mxfp4").sqnr_db)

Every function releases the GIL while it computes and runs on ``threads`` worker threads (default: all
cores, as the CLI; results do not depend on it). Bad input raises :class:`qcast.Error` (a ``ValueError``)
with the library's message; a wrong dtype raises ``TypeError``.
"""
from ._qcast import (  # noqa: F401
    Encoded,
    Error,
    Format,
    NamedFormat,
    Recipe,
    PackedFile,
    Stats,
    cast,
    decode,
    default_threads,
    encode,
    formats,
    load_recipe,
    load_packed,
    save_packed,
    stats,
)
from ._files import cli_path, cost, eval, quantize_model  # noqa: F401,A004

__version__ = "0.1.0"

__all__ = [
    "Encoded", "Error", "Format", "NamedFormat", "PackedFile", "Stats", "cast", "cost", "decode",
    "default_threads", "encode", "eval", "formats", "load_packed", "load_recipe", "quantize_model", "Recipe", "save_packed", "stats",
]
