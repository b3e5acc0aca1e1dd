// The qcast Python extension (qcast._qcast): numpy in, numpy out, on the library's public API.
// Every computation runs with the GIL released; qcast::Error becomes qcast.Error (a ValueError) carrying
// the library's message. No numpy C API and no libtorch: one build serves every numpy / torch version.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "qcast/error.hpp"
#include "qcast/format.hpp"
#include "qcast/half.hpp"
#include "qcast/io.hpp"
#include "qcast/nn/recipe.hpp"
#include "qcast/packed.hpp"
#include "qcast/quantize.hpp"
#include "qcast/stats.hpp"
#include "qcast/tensor.hpp"

namespace py = pybind11;
using namespace qcast;

namespace {

int default_threads() { return static_cast<int>(std::max(1u, std::thread::hardware_concurrency())); }

int resolve_threads(const py::object& threads) {
  if (threads.is_none()) return default_threads();
  const long t = threads.cast<long>();
  if (t < 1 || t > 1024) throw Error("threads must be in 1..1024, got " + std::to_string(t));
  return static_cast<int>(t);
}

Format to_format(const py::handle& fmt) {
  if (py::isinstance<Format>(fmt)) return fmt.cast<Format>();
  if (py::isinstance<py::str>(fmt)) return Format::parse(fmt.cast<std::string>());
  throw py::type_error("format must be a qcast.Format or a str, got " + std::string(py::str(py::type::of(fmt).attr("__name__"))));
}

QuantOptions make_options(const std::string& round, int axis, const std::string& overflow, std::uint64_t seed, int threads) {
  QuantOptions o;
  o.round = parse_round_mode(round);
  if (overflow == "saturate") o.overflow = Overflow::Saturate;
  else if (overflow == "inf") o.overflow = Overflow::Inf;
  else throw Error("unknown overflow '" + overflow + "' (saturate, inf)");
  o.axis = axis;
  o.seed = seed;
  o.threads = threads;
  return o;
}

// A float input as contiguous float32 values: float32 arrays are used in place when C-contiguous (else
// copied), float16 arrays are widened exactly as the CLI widens a float16 .npy. Anything else: TypeError.
struct FloatInput {
  py::array arr;          // keeps the data alive
  Shape shape;
  const float* data = nullptr;
  std::vector<float> widened;
};

FloatInput float_input(const py::handle& obj, const char* what) {
  if (!py::isinstance<py::array>(obj))
    throw py::type_error(std::string(what) + " must be a numpy array of float32 or float16, got " +
                         std::string(py::str(py::type::of(obj).attr("__name__"))));
  py::array a = py::reinterpret_borrow<py::array>(obj);
  const py::dtype dt = a.dtype();
  const bool f32 = dt.kind() == 'f' && dt.itemsize() == 4, f16 = dt.kind() == 'f' && dt.itemsize() == 2;
  if (!f32 && !f16)
    throw py::type_error(std::string(what) + " must be float32 or float16 (as `qcast cast` reads), got dtype " +
                         py::str(py::handle(dt)).cast<std::string>() + "; convert it with .astype(numpy.float32)");
  FloatInput in;
  for (py::ssize_t i = 0; i < a.ndim(); ++i) in.shape.push_back(a.shape(i));
  if (f32) {
    in.arr = py::array_t<float, py::array::c_style | py::array::forcecast>::ensure(a);  // a copy only if strided / byte-swapped
    if (!in.arr) throw py::error_already_set();
    in.data = static_cast<const float*>(in.arr.data());
  } else {
    py::array_t<std::uint16_t, py::array::c_style> h(in.shape);
    // Reinterpret the float16 bits (with numpy's copy into a C-ordered buffer for strided input).
    py::array view = a.attr("astype")("float16", py::arg("copy") = false).attr("view")(py::dtype("uint16"));  // native order
    h[py::make_tuple(py::ellipsis())] = view;
    in.arr = h;
    const auto* p = h.data();
    const std::int64_t n = shape_numel(in.shape);
    {
      py::gil_scoped_release nogil;
      in.widened.resize(static_cast<std::size_t>(n));
      for (std::int64_t i = 0; i < n; ++i) in.widened[static_cast<std::size_t>(i)] = f16_to_f32(p[i]);
    }
    in.data = in.widened.data();
  }
  return in;
}

py::array_t<float> new_f32(const Shape& shape) {
  std::vector<py::ssize_t> dims(shape.begin(), shape.end());
  return py::array_t<float>(dims);
}

py::array_t<std::uint8_t> bytes_to_array(const Bytes& b) {
  py::array_t<std::uint8_t> a(static_cast<py::ssize_t>(b.size()));
  if (!b.empty()) std::memcpy(a.mutable_data(), b.data(), b.size());
  return a;
}

Bytes array_to_bytes(const py::handle& obj, const char* what) {
  py::array_t<std::uint8_t, py::array::c_style> a;
  if (py::isinstance<py::bytes>(obj)) {
    const std::string s = obj.cast<std::string>();
    return Bytes(s.begin(), s.end());
  }
  if (!py::isinstance<py::array>(obj) || py::reinterpret_borrow<py::array>(obj).dtype().kind() != 'u' ||
      py::reinterpret_borrow<py::array>(obj).dtype().itemsize() != 1)
    throw py::type_error(std::string(what) + " must be a uint8 numpy array or bytes");
  a = py::array_t<std::uint8_t, py::array::c_style>::ensure(obj);
  const auto* p = a.data();
  return Bytes(p, p + a.size());
}

py::tuple shape_tuple(const Shape& s) {
  py::tuple t(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) t[i] = py::int_(s[i]);
  return t;
}

const char* kind_name(Element::Kind k) {
  switch (k) {
    case Element::Kind::Int: return "int";
    case Element::Kind::Float: return "float";
    case Element::Kind::Codebook: return "codebook";
  }
  return "?";
}

const char* scale_kind_name(ScaleKind k) {
  switch (k) {
    case ScaleKind::None: return "none";
    case ScaleKind::Tensor: return "tensor";
    case ScaleKind::Channel: return "channel";
    case ScaleKind::Block: return "block";
    case ScaleKind::Tile: return "tile";
  }
  return "?";
}

// Can a format hold NaN anywhere: a NaN element code, or a scale element with a NaN code (a group holding
// NaN gets a NaN scale and decodes to NaN, docs/formats.md "NaN / Inf")?
bool represents_nan(const Format& f) {
  if (f.elem().has_nan()) return true;
  return f.scaling().kind != ScaleKind::None && f.scaling().scale_elem.has_nan();
}

// NaN in the input of a format that cannot represent NaN (int8, e2m1, ... without a scale): raised as
// qcast.Error by default (nan="raise"); nan="propagate" gives what the library computes for it.
void check_nan(const Format& f, const float* x, std::int64_t n, const std::string& nan) {
  if (nan != "raise" && nan != "propagate") throw Error("unknown nan policy '" + nan + "' (raise, propagate)");
  if (nan == "propagate" || represents_nan(f)) return;
  bool found = false;
  std::int64_t where = -1;
  {
    py::gil_scoped_release nogil;
    for (std::int64_t i = 0; i < n; ++i)
      if (std::isnan(x[i])) { found = true; where = i; break; }
  }
  if (found)
    throw Error("input holds NaN (first at flat index " + std::to_string(where) + ") but format '" + f.name() +
                "' cannot represent NaN (neither its element " + f.elem().name + " nor a scale has a NaN code); "
                "pass nan='propagate' to get the library's output for it");
}

py::array_t<float> py_cast(const py::object& x, const py::object& fmt, int axis, const std::string& round,
                           const std::string& overflow, std::uint64_t seed, const py::object& threads, const std::string& nan) {
  const Format f = to_format(fmt);
  const QuantOptions opt = make_options(round, axis, overflow, seed, resolve_threads(threads));
  FloatInput in = float_input(x, "x");
  const std::int64_t n = shape_numel(in.shape);
  check_nan(f, in.data, n, nan);
  py::array_t<float> out = new_f32(in.shape);
  float* o = out.mutable_data();
  {
    py::gil_scoped_release nogil;
    fake_quant(f, in.data, o, in.shape, opt);
  }
  return out;
}

Encoded py_encode(const py::object& x, const py::object& fmt, int axis, const std::string& round,
                  const std::string& overflow, std::uint64_t seed, const py::object& threads) {
  const Format f = to_format(fmt);
  const QuantOptions opt = make_options(round, axis, overflow, seed, resolve_threads(threads));
  FloatInput in = float_input(x, "x");
  py::gil_scoped_release nogil;
  return encode(f, in.data, in.shape, opt);
}

py::array_t<float> py_decode(const Encoded& e, const py::object& threads) {
  const int t = resolve_threads(threads);
  check_encoded(e);  // sizes, groups and axis before anything is allocated from the shape
  py::array_t<float> out = new_f32(e.shape);
  float* o = out.mutable_data();
  {
    py::gil_scoped_release nogil;
    decode(e, o, t);
  }
  return out;
}

QuantStats py_stats(const py::object& x, const py::object& fmt, int axis, const std::string& round,
                    const std::string& overflow, std::uint64_t seed, const py::object& threads) {
  const Format f = to_format(fmt);
  const QuantOptions opt = make_options(round, axis, overflow, seed, resolve_threads(threads));
  FloatInput in = float_input(x, "x");
  py::gil_scoped_release nogil;
  return quant_stats(f, in.data, in.shape, opt);
}

// ---- packed files ----

DType dtype_of(const py::dtype& dt) {
  const char k = dt.kind();
  const auto sz = dt.itemsize();
  if (k == 'f' && sz == 4) return DType::F32;
  if (k == 'f' && sz == 2) return DType::F16;
  if (k == 'f' && sz == 8) return DType::F64;
  if (k == 'i' && sz == 1) return DType::I8;
  if (k == 'i' && sz == 2) return DType::I16;
  if (k == 'i' && sz == 4) return DType::I32;
  if (k == 'i' && sz == 8) return DType::I64;
  if (k == 'u' && sz == 1) return DType::U8;
  if (k == 'u' && sz == 2) return DType::U16;
  if (k == 'u' && sz == 4) return DType::U32;
  if (k == 'u' && sz == 8) return DType::U64;
  if (k == 'b' && sz == 1) return DType::Bool;
  throw py::type_error("cannot store a numpy array of dtype " + py::str(py::handle(dt)).cast<std::string>() + " in safetensors");
}

const char* numpy_name(DType t) {
  switch (t) {
    case DType::F32: return "float32";
    case DType::F16: return "float16";
    case DType::F64: return "float64";
    case DType::I8: return "int8";
    case DType::U8: return "uint8";
    case DType::I16: return "int16";
    case DType::I32: return "int32";
    case DType::I64: return "int64";
    case DType::U16: return "uint16";
    case DType::U32: return "uint32";
    case DType::U64: return "uint64";
    case DType::Bool: return "bool";
    case DType::BF16: return "uint16";  // numpy has no bfloat16: the raw bits
  }
  return "uint8";
}

py::array tensor_to_numpy(const Tensor& t) {
  std::vector<py::ssize_t> dims(t.shape.begin(), t.shape.end());
  py::array a(py::dtype(numpy_name(t.dtype)), dims);
  if (t.nbytes()) std::memcpy(a.mutable_data(), t.data, t.nbytes());
  return a;
}

Tensor numpy_to_tensor(const py::handle& obj, const std::string& name) {
  if (!py::isinstance<py::array>(obj)) throw py::type_error("plain tensor '" + name + "' must be a numpy array");
  py::array a = py::reinterpret_borrow<py::array>(obj);
  const DType dt = dtype_of(a.dtype());
  py::array c = py::array::ensure(a, py::array::c_style);
  auto buf = std::make_shared<std::vector<std::uint8_t>>(static_cast<std::size_t>(c.nbytes()));
  if (c.nbytes()) std::memcpy(buf->data(), c.data(), static_cast<std::size_t>(c.nbytes()));
  Tensor t;
  t.dtype = dt;
  for (py::ssize_t i = 0; i < c.ndim(); ++i) t.shape.push_back(c.shape(i));
  t.data = buf->data();
  t.owner = buf;
  return t;
}

struct PyPackedFile {
  py::dict quantized, plain, metadata;
};

PyPackedFile py_load_packed(const std::string& path) {
  PackedFile pf;
  {
    py::gil_scoped_release nogil;
    pf = read_packed(path);
  }
  PyPackedFile r;
  for (auto& [name, e] : pf.quantized) r.quantized[py::str(name)] = py::cast(std::move(e));
  for (auto& nt : pf.plain) r.plain[py::str(nt.name)] = tensor_to_numpy(nt.tensor);
  for (auto& [k, v] : pf.metadata) r.metadata[py::str(k)] = py::str(v);
  return r;
}

void py_save_packed(const std::string& path, const py::dict& quantized, const py::object& plain, const py::object& metadata) {
  PackedFile pf;
  for (auto item : quantized) {
    const std::string name = py::str(item.first);
    if (!py::isinstance<Encoded>(item.second))
      throw py::type_error("quantized['" + name + "'] must be a qcast.Encoded (from qcast.encode)");
    Encoded e = item.second.cast<Encoded>();
    try {
      check_encoded(e);
    } catch (const Error& ex) {
      throw Error("tensor '" + name + "': " + ex.what());
    }
    pf.quantized.emplace_back(name, std::move(e));
  }
  if (!plain.is_none())
    for (auto item : plain.cast<py::dict>()) {
      const std::string name = py::str(item.first);
      pf.plain.push_back({name, numpy_to_tensor(item.second, name)});
    }
  if (!metadata.is_none())
    for (auto item : metadata.cast<py::dict>()) pf.metadata[py::str(item.first)] = py::str(item.second);
  py::gil_scoped_release nogil;
  write_packed(path, pf);
}

}  // namespace

PYBIND11_MODULE(_qcast, m) {
  m.doc() = "qcast's native core: number formats, fake-quant, encode/decode, statistics (numpy in, numpy out).";
  static py::exception<Error> error(m, "Error", PyExc_ValueError);
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const Error& e) {
      PyErr_SetString(error.ptr(), e.what());
    }
  });
  error.doc() = "Bad input to qcast (unknown format, bad shape or axis, corrupt file, ...): the library's message.";

  py::class_<Format>(m, "Format", R"(A number format: an immutable value parsed from a name (`qcast formats`)
or a composition string ELEM[@SCALE[+fp32]][/b<N>|/g<N>|/ch<A>|/t<R>x<C>|/tensor][/ax<A>][/asym][/RULE]
(docs/formats.md). Equal formats compare equal and hash alike whatever their spelling:
Format('mxfp4') == Format('E2M1@E8M0/B32/FLOOR').)")
      .def(py::init([](const std::string& s) { return Format::parse(s); }), py::arg("name"),
           "Parses a named format, an alias or a composition string; qcast.Error names the offending part.")
      .def_static("parse", [](const std::string& s) { return Format::parse(s); }, py::arg("name"), "Same as Format(name).")
      .def_property_readonly("name", &Format::name, "The canonical name (the table's name, else the composition).")
      .def_property_readonly("expanded", &Format::expanded, "The composition string, also for named formats.")
      .def_property_readonly("bits_per_element", &Format::bits_per_element,
                             "Bits per element including block / tile scale overhead (per-channel / tensor overhead excluded).")
      .def_property_readonly("element", [](const Format& f) { return f.elem().name; }, "The element's canonical name (e2m1, int4, ...).")
      .def_property_readonly("element_kind", [](const Format& f) { return kind_name(f.elem().kind); }, "'int', 'float' or 'codebook'.")
      .def_property_readonly("element_bits", [](const Format& f) { return f.elem().bits; }, "Storage bits of one element code.")
      .def_property_readonly("max_value", [](const Format& f) { return f.elem().max_value(); }, "Largest finite element value.")
      .def_property_readonly("min_positive", [](const Format& f) { return f.elem().min_positive(); },
                             "Smallest positive element value (subnormal for floats).")
      .def_property_readonly("has_nan", [](const Format& f) { return f.elem().has_nan(); }, "Whether the element has a NaN code.")
      .def_property_readonly("represents_nan", &represents_nan,
                             "Whether NaN survives quantization: a NaN element code or a scale element with one.")
      .def_property_readonly("has_inf", [](const Format& f) { return f.elem().has_inf(); }, "Whether the element has infinities.")
      .def_property_readonly("scaling", [](const Format& f) { return scale_kind_name(f.scaling().kind); },
                             "'none', 'tensor', 'channel', 'block' or 'tile'.")
      .def_property_readonly("block_size", [](const Format& f) { return f.scaling().block; }, "Block size (0 unless block scaling).")
      .def_property_readonly("tile", [](const Format& f) { return py::make_tuple(f.scaling().tile_rows, f.scaling().tile_cols); },
                             "(rows, cols) of tile scaling, (0, 0) otherwise.")
      .def_property_readonly("axis", [](const Format& f) -> py::object {
        if (!f.scaling().axis_explicit && f.scaling().kind != ScaleKind::Channel) return py::none();
        return py::int_(f.scaling().axis);
      }, "The axis the format names (/ch<A> or /ax<A>), else None (the axis= argument decides).")
      .def_property_readonly("scale_element", [](const Format& f) -> py::object {
        if (f.scaling().kind == ScaleKind::None) return py::none();
        return py::str(f.scaling().scale_elem.name);
      }, "The element the scales are stored in (e8m0, fp16, ...), None without scaling.")
      .def_property_readonly("scale_rule", [](const Format& f) -> py::object {
        if (f.scaling().kind == ScaleKind::None) return py::none();
        return py::str(scale_rule_name(f.scaling().rule));
      }, "floor, ceil, rceil, midmax, amax or mse; None without scaling.")
      .def_property_readonly("asym", [](const Format& f) { return f.scaling().asym; }, "Asymmetric integers with a zero point.")
      .def_property_readonly("tensor_scale", [](const Format& f) { return f.scaling().tensor_scale; },
                             "A second-level fp32 tensor scale (nvfp4).")
      .def("__eq__", [](const Format& a, const py::object& b) -> py::object {
        if (!py::isinstance<Format>(b)) return py::reinterpret_borrow<py::object>(Py_NotImplemented);
        return py::bool_(a == b.cast<Format>());
      })
      .def("__hash__", [](const Format& f) { return static_cast<py::ssize_t>(f.hash()); })
      .def("__repr__", [](const Format& f) { return "qcast.Format('" + f.name() + "')"; })
      .def("__str__", &Format::name)
      .def(py::pickle([](const Format& f) { return f.expanded(); },
                      [](const std::string& s) { return Format::parse(s); }));

  py::class_<NamedFormat>(m, "NamedFormat", "One row of the named-format table (`qcast formats`).")
      .def_readonly("name", &NamedFormat::name)
      .def_readonly("composition", &NamedFormat::composition)
      .def_readonly("aliases", &NamedFormat::aliases)
      .def_readonly("ggml", &NamedFormat::ggml)
      .def_readonly("storage_bits", &NamedFormat::storage_bits)
      .def_readonly("fast", &NamedFormat::fast, "The SIMD kernels cover it (others take the scalar reference).")
      .def_readonly("description", &NamedFormat::description)
      .def_property_readonly("format", [](const NamedFormat& r) { return Format::parse(r.name); })
      .def("__repr__", [](const NamedFormat& r) { return "qcast.NamedFormat('" + r.name + "')"; });

  m.def("formats", [] { return format_table(); }, "The named-format table in the order of `qcast formats`.");

  py::class_<Encoded>(m, "Encoded", R"(A quantized tensor: bit-packed element codes + scale codes (docs/packed-layout.md),
as `qcast encode` stores it. decode() restores float32 values.)")
      .def(py::init([](const std::string& format, const std::vector<std::int64_t>& shape, int axis, const py::object& codes,
                       const py::object& scales, const py::object& zeros, float tensor_scale, std::int64_t num_groups) {
             Encoded e;
             e.format = Format::parse(format).name();
             e.shape = shape;
             e.axis = axis;
             e.codes = array_to_bytes(codes, "codes");
             e.scales = array_to_bytes(scales, "scales");
             e.zeros = array_to_bytes(zeros, "zeros");
             e.tensor_scale = tensor_scale;
             e.num_groups = num_groups;
             return e;
           }),
           py::arg("format"), py::arg("shape"), py::arg("axis"), py::arg("codes"), py::arg("scales"),
           py::arg("zeros") = py::bytes(""), py::arg("tensor_scale") = 1.0f, py::arg("num_groups") = 0,
           "Builds an encoded tensor from its parts (checked when decoded or saved).")
      .def_readonly("format", &Encoded::format, "Canonical format name.")
      .def_property_readonly("shape", [](const Encoded& e) { return shape_tuple(e.shape); })
      .def_readonly("axis", &Encoded::axis, "Resolved block / channel axis (non-negative), -1 if none.")
      .def_property_readonly("codes", [](const Encoded& e) { return bytes_to_array(e.codes); }, "Element codes, bit-packed LSB-first (uint8 copy).")
      .def_property_readonly("scales", [](const Encoded& e) { return bytes_to_array(e.scales); }, "Scale codes, bit-packed (uint8 copy).")
      .def_property_readonly("zeros", [](const Encoded& e) { return bytes_to_array(e.zeros); }, "Zero points of asymmetric formats (uint8 copy).")
      .def_readonly("tensor_scale", &Encoded::tensor_scale, "Second-level fp32 scale (nvfp4), else 1.")
      .def_readonly("num_groups", &Encoded::num_groups, "Number of scale groups.")
      .def_property_readonly("nbytes", [](const Encoded& e) { return e.codes.size() + e.scales.size() + e.zeros.size(); },
                             "Packed size in bytes (codes + scales + zero points).")
      .def("__repr__", [](const Encoded& e) {
        return "qcast.Encoded(format='" + e.format + "', shape=" + shape_str(e.shape) + ", " +
               std::to_string(e.codes.size() + e.scales.size() + e.zeros.size()) + " bytes)";
      });

  py::class_<QuantStats>(m, "Stats", "Quantization error of a tensor under a format (as `qcast stats`).")
      .def_readonly("count", &QuantStats::count, "Finite elements measured.")
      .def_readonly("signal", &QuantStats::signal, "Sum of x^2.")
      .def_readonly("noise", &QuantStats::noise, "Sum of (x - q)^2.")
      .def_readonly("max_abs_err", &QuantStats::max_abs_err)
      .def_readonly("clipped", &QuantStats::clipped, "Elements beyond the largest value their group can represent.")
      .def_readonly("flushed", &QuantStats::flushed, "Non-zero elements quantized to zero.")
      .def_property_readonly("mse", &QuantStats::mse)
      .def_property_readonly("sqnr_db", &QuantStats::sqnr_db, "10 log10(signal / noise); inf when lossless.")
      .def_property_readonly("frac_clipped", &QuantStats::frac_clipped)
      .def_property_readonly("frac_flushed", &QuantStats::frac_flushed)
      .def("__repr__", [](const QuantStats& s) {
        return "qcast.Stats(count=" + std::to_string(s.count) + ", mse=" + std::to_string(s.mse()) +
               ", sqnr_db=" + std::to_string(s.sqnr_db()) + ")";
      });

  py::class_<PyPackedFile>(m, "PackedFile", "The content of a packed .safetensors file (`qcast encode` / `qcast quantize`).")
      .def_readonly("quantized", &PyPackedFile::quantized, "name -> qcast.Encoded, in file order.")
      .def_readonly("plain", &PyPackedFile::plain, "name -> numpy array, tensors stored unquantized (BF16 as uint16 bits).")
      .def_readonly("metadata", &PyPackedFile::metadata, "User metadata (qcast.* keys removed).");

  m.def("cast", &py_cast, py::arg("x"), py::arg("format"), py::kw_only(), py::arg("axis") = -1, py::arg("round") = "even",
        py::arg("overflow") = "saturate", py::arg("seed") = 0, py::arg("threads") = py::none(), py::arg("nan") = "raise",
        "Fake-quant (quantize, then dequantize) a float32 / float16 array; float32 out, bit-identical to `qcast cast`.");
  m.def("encode", &py_encode, py::arg("x"), py::arg("format"), py::kw_only(), py::arg("axis") = -1, py::arg("round") = "even",
        py::arg("overflow") = "saturate", py::arg("seed") = 0, py::arg("threads") = py::none(),
        "Quantize to packed codes + scales (as `qcast encode`).");
  m.def("decode", &py_decode, py::arg("encoded"), py::kw_only(), py::arg("threads") = py::none(),
        "Restore float32 values from an Encoded tensor (as `qcast decode`).");
  m.def("stats", &py_stats, py::arg("x"), py::arg("format"), py::kw_only(), py::arg("axis") = -1, py::arg("round") = "even",
        py::arg("overflow") = "saturate", py::arg("seed") = 0, py::arg("threads") = py::none(),
        "Quantization error of x under a format (as `qcast stats`).");
  m.def("load_packed", &py_load_packed, py::arg("path"), "Read a packed .safetensors file (validated).");
  m.def("save_packed", &py_save_packed, py::arg("path"), py::arg("quantized"), py::arg("plain") = py::none(),
        py::arg("metadata") = py::none(), "Write a packed .safetensors file atomically (`qcast decode` reads it).");
  py::class_<nn::Recipe>(m, "Recipe", "A quantization recipe (the YAML / JSON of `qcast eval --recipe`), validated.")
      .def_readonly("weights", &nn::Recipe::weights)
      .def_readonly("activations", &nn::Recipe::acts)
      .def_readonly("kv_cache", &nn::Recipe::kv)
      .def_readonly("skip", &nn::Recipe::skip)
      .def("formats_for", [](const nn::Recipe& r, const std::string& layer) {
        std::string w, a, o;
        r.formats_for(layer, w, a, o);
        auto opt = [](const std::string& s) -> py::object {
          const auto f = nn::parse_optional_format(s);
          return f ? py::object(py::str(f->name())) : py::object(py::none());
        };
        return py::make_tuple(opt(w), opt(a), py::str(o));
      }, py::arg("layer"), "(weight format, activation format, observer) of a layer; None = full precision, observer '' = dynamic.");
  m.def("load_recipe", [](const std::string& path) {
    nn::Recipe r = nn::load_recipe(path);
    r.validate(path);
    return r;
  }, py::arg("path"), "Load and validate a recipe file (YAML or JSON).");
  m.def("default_threads", &default_threads, "Threads used when threads=None: all cores, as the CLI.");
}
