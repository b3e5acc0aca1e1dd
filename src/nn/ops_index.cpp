// Indexing operators that exporters emit around transformers and detection heads (GatherND, ScatterND,
// OneHot) and Einsum, for the patterns torch.onnx / tf2onnx write (batched matmuls, transposes, traces,
// sums; any equation is computed).
#include <algorithm>
#include <array>
#include <cmath>
#include <string>
#include <vector>

#include "nn/ops.hpp"
#include "qcast/kernels/blas.hpp"
#include "qcast/kernels/thread_pool.hpp"

namespace qcast::nn::detail {
namespace {

std::int64_t prod(const Shape& s, std::size_t from, std::size_t to) {
  std::int64_t p = 1;
  for (std::size_t d = from; d < to; ++d) p *= s[d];
  return p;
}

// Index tuples of GatherND / ScatterND: the last axis of `I` (k entries) addresses the dimensions
// [b, b + k) of `shape`; negative entries count from the end. Returns the flat offsets of the addressed
// slices (in units of the slice size `inner`), per batch b (batch-major), c.fail on an index out of range.
std::vector<std::int64_t> nd_offsets(const OpCtx& c, const Value& I, const Shape& shape, std::int64_t b, std::int64_t k) {
  const std::int64_t n = k ? I.numel() / k : 0;
  std::vector<std::int64_t> off(static_cast<std::size_t>(n));
  for (std::int64_t t = 0; t < n; ++t) {
    std::int64_t o = 0;
    for (std::int64_t j = 0; j < k; ++j) {
      const std::int64_t D = shape[static_cast<std::size_t>(b + j)];
      const std::int64_t given = (*I.i)[static_cast<std::size_t>(t * k + j)];  // int64 itself: no round trip through double
      const std::int64_t v = given < 0 ? given + D : given;
      if (v < 0 || v >= D) c.fail("index " + std::to_string(given) + " out of range for a dimension of " + std::to_string(D));
      o = o * D + v;
    }
    off[static_cast<std::size_t>(t)] = o;
  }
  return off;
}

void check_index_operand(const OpCtx& c, const Value& I, std::int64_t rank_data, std::int64_t b, std::int64_t& k) {
  if (!I.is_int) c.fail("indices must be an integer tensor");
  if (I.shape.empty()) c.fail("indices must have rank >= 1");
  k = I.shape.back();
  if (b < 0 || b >= static_cast<std::int64_t>(I.shape.size())) c.fail("batch_dims must be in [0, rank(indices))");
  if (k < 1 || b + k > rank_data) c.fail("the last dimension of indices (" + std::to_string(k) + ") plus batch_dims exceeds the data's rank " + std::to_string(rank_data));
}

// The `reduction` of ScatterND / ScatterElements: how an update meets the value it lands on.
enum class Reduction { None, Add, Mul, Max, Min };

Reduction reduction(const OpCtx& c) {
  const std::string r = c.node.get_s("reduction", "none");
  if (r == "none") return Reduction::None;
  if (r == "add") return Reduction::Add;
  if (r == "mul") return Reduction::Mul;
  if (r == "max") return Reduction::Max;
  if (r == "min") return Reduction::Min;
  c.fail("unknown reduction '" + r + "' (none, add, mul, max, min)");
}

template <class T>
void combine(T& t, T s, Reduction r) {
  switch (r) {
    case Reduction::None: t = s; break;
    case Reduction::Add: t += s; break;
    case Reduction::Mul: t *= s; break;
    case Reduction::Max: t = std::max(t, s); break;
    case Reduction::Min: t = std::min(t, s); break;
  }
}

}  // namespace

void op_gather_nd(OpCtx& c) {
  const Value& X = c.x(0);
  const Value& I = c.x(1);
  const std::int64_t b = c.node.get_i("batch_dims", 0), r = static_cast<std::int64_t>(X.shape.size());
  std::int64_t k = 0;
  check_index_operand(c, I, r, b, k);
  for (std::int64_t d = 0; d < b; ++d)
    if (I.shape[static_cast<std::size_t>(d)] != X.shape[static_cast<std::size_t>(d)]) c.fail("the batch dimensions of data and indices differ");
  Shape s(I.shape.begin(), I.shape.end() - 1);
  s.insert(s.end(), X.shape.begin() + b + k, X.shape.end());
  Value& Y = c.alloc(0, s, X.is_int);
  if (c.shape_only) return;
  const std::int64_t inner = prod(X.shape, static_cast<std::size_t>(b + k), X.shape.size());
  const std::int64_t batches = prod(X.shape, 0, static_cast<std::size_t>(b));
  const std::int64_t per_batch_in = prod(X.shape, static_cast<std::size_t>(b), X.shape.size());
  const auto off = nd_offsets(c, I, X.shape, b, k);
  const std::int64_t per_batch_idx = batches ? static_cast<std::int64_t>(off.size()) / batches : 0;
  for (std::size_t t = 0; t < off.size(); ++t) {
    const std::int64_t src = (static_cast<std::int64_t>(t) / std::max<std::int64_t>(per_batch_idx, 1)) * per_batch_in + off[t] * inner;
    const std::int64_t dst = static_cast<std::int64_t>(t) * inner;
    if (X.is_int) std::copy_n(X.ip() + src, inner, Y.i->data() + dst);
    else std::copy_n(X.fp() + src, inner, Y.mfp() + dst);
  }
}

void op_scatter_nd(OpCtx& c) {
  const Value& X = c.x(0);
  const Value& I = c.x(1);
  const Value& U = c.x(2);
  const std::int64_t r = static_cast<std::int64_t>(X.shape.size());
  std::int64_t k = 0;
  check_index_operand(c, I, r, 0, k);
  if (U.is_int != X.is_int) c.fail("updates and data differ in type");
  Shape us(I.shape.begin(), I.shape.end() - 1);
  us.insert(us.end(), X.shape.begin() + k, X.shape.end());
  if (U.shape != us) c.fail("updates have shape " + shape_str(U.shape) + ", expected " + shape_str(us));
  const Reduction red = reduction(c);
  Value& Y = c.alloc(0, X.shape, X.is_int);
  if (c.shape_only) return;
  const std::int64_t inner = prod(X.shape, static_cast<std::size_t>(k), X.shape.size());
  const auto off = nd_offsets(c, I, X.shape, 0, k);
  auto apply = [&](auto* y, const auto* x, const auto* u) {
    std::copy_n(x, X.numel(), y);
    // In index order: with reduction none a repeated index keeps its last update (ONNX leaves it open).
    for (std::size_t t = 0; t < off.size(); ++t) {
      auto* d = y + off[t] * inner;
      const auto* s = u + static_cast<std::int64_t>(t) * inner;
      for (std::int64_t e = 0; e < inner; ++e) combine(d[e], s[e], red);
    }
  };
  if (X.is_int) apply(Y.i->data(), X.ip(), U.ip());
  else apply(Y.mfp(), X.fp(), U.fp());
}

// ScatterElements (and the older Scatter): out = data, then out[.., index[i], ..] (op)= updates[i] along
// `axis`, every element of `indices` in row-major order.
void op_scatter_elements(OpCtx& c) {
  const Value& X = c.x(0);
  const Value& I = c.x(1);
  const Value& U = c.x(2);
  const auto r = static_cast<std::int64_t>(X.shape.size());
  if (!I.is_int) c.fail("indices must be an integer tensor");
  if (U.is_int != X.is_int) c.fail("updates and data differ in type");
  if (I.shape != U.shape) c.fail("indices " + shape_str(I.shape) + " and updates " + shape_str(U.shape) + " differ in shape");
  if (static_cast<std::int64_t>(I.shape.size()) != r) c.fail("indices must have the data's rank");
  std::int64_t axis = c.node.get_i("axis", 0);
  if (axis < 0) axis += r;
  if (axis < 0 || axis >= r) c.fail("axis out of range for rank " + std::to_string(r));
  for (std::int64_t d = 0; d < r; ++d)
    if (I.shape[static_cast<std::size_t>(d)] > X.shape[static_cast<std::size_t>(d)] && d != axis) c.fail("indices are larger than the data outside the axis");
  const Reduction red = reduction(c);
  Value& Y = c.alloc(0, X.shape, X.is_int);
  if (c.shape_only) return;
  const auto xs = strides_of(X.shape), is = strides_of(I.shape);
  const std::int64_t D = X.shape[static_cast<std::size_t>(axis)];
  auto apply = [&](auto* y, const auto* x, const auto* u) {
    std::copy_n(x, X.numel(), y);
    for (std::int64_t k = 0; k < I.numel(); ++k) {
      auto v = (*I.i)[static_cast<std::size_t>(k)];
      if (v < 0) v += D;
      if (v < 0 || v >= D) c.fail("index " + std::to_string((*I.i)[static_cast<std::size_t>(k)]) + " out of range for a dimension of " + std::to_string(D));
      std::int64_t off = 0;
      for (std::int64_t d = 0; d < r; ++d) {
        const std::int64_t i = d == axis ? v : (k / is[static_cast<std::size_t>(d)]) % I.shape[static_cast<std::size_t>(d)];
        off += i * xs[static_cast<std::size_t>(d)];
      }
      combine(y[off], u[k], red);
    }
  };
  if (X.is_int) apply(Y.i->data(), X.ip(), U.ip());
  else apply(Y.mfp(), X.fp(), U.fp());
}

void op_one_hot(OpCtx& c) {
  const Value& I = c.x(0);
  const Value& Dv = c.data(1);
  const Value& V = c.data(2);
  if (Dv.numel() != 1) c.fail("depth must be a scalar");
  if (V.numel() != 2) c.fail("values must have two elements [off, on]");
  const double dd = Dv.at(0);
  if (!(dd >= 1) || dd > static_cast<double>(max_tensor_elements())) c.fail("depth must be a positive number within the tensor size limit");
  const auto depth = static_cast<std::int64_t>(dd);
  const std::int64_t r = static_cast<std::int64_t>(I.shape.size());
  std::int64_t axis = c.node.get_i("axis", -1);
  if (axis < 0) axis += r + 1;
  if (axis < 0 || axis > r) c.fail("axis out of range for rank " + std::to_string(r + 1));
  Shape s = I.shape;
  s.insert(s.begin() + axis, depth);
  Value& Y = c.alloc(0, s, V.is_int);
  if (c.shape_only) return;
  const std::int64_t outer = prod(I.shape, 0, static_cast<std::size_t>(axis)), inner = prod(I.shape, static_cast<std::size_t>(axis), I.shape.size());
  for (std::int64_t o = 0; o < outer; ++o)
    for (std::int64_t d = 0; d < depth; ++d)
      for (std::int64_t e = 0; e < inner; ++e) {
        // Float indices are truncated; one beyond +-2^62 (or NaN) matches no position.
        const double raw = std::trunc(I.at(o * inner + e));
        std::int64_t v = std::fabs(raw) < 4.6e18 ? static_cast<std::int64_t>(raw) : -1 - depth;
        if (I.is_int) v = (*I.i)[static_cast<std::size_t>(o * inner + e)];
        if (v < 0 && v >= -depth) v += depth;  // opset 11: negative indices count from the end
        const std::int64_t y = (o * depth + d) * inner + e;
        const double val = V.at(v == d ? 1 : 0);
        if (V.is_int) (*Y.i)[static_cast<std::size_t>(y)] = static_cast<std::int64_t>(val);
        else (*Y.f)[static_cast<std::size_t>(y)] = static_cast<float>(val);
      }
}

// NonZero: the indices of the non-zero elements, [rank, count], in row-major order. The count depends on
// the data: shape inference without data assumes every element is non-zero (the largest result).
void op_non_zero(OpCtx& c) {
  const Value& X = c.x(0);
  const auto r = static_cast<std::int64_t>(X.shape.size());
  std::int64_t count = X.numel();
  if (!c.shape_only) {
    count = 0;
    for (std::int64_t k = 0; k < X.numel(); ++k) count += X.at(k) != 0.0;
  }
  Value& Y = c.alloc(0, Shape{std::max<std::int64_t>(r, 1), count}, true);
  if (c.shape_only) return;
  const auto st = strides_of(X.shape);
  std::int64_t j = 0;
  for (std::int64_t k = 0; k < X.numel(); ++k) {
    if (X.at(k) == 0.0) continue;
    if (r == 0) (*Y.i)[static_cast<std::size_t>(j)] = 0;  // a scalar: one row of zeros
    for (std::int64_t d = 0; d < r; ++d) (*Y.i)[static_cast<std::size_t>(d * count + j)] = (k / st[static_cast<std::size_t>(d)]) % X.shape[static_cast<std::size_t>(d)];
    ++j;
  }
}

// ---------------------------------------------------------------------------------------------
// Einsum: every operand's dimensions get labels (letters, plus one label per dimension an ellipsis
// covers); the output is the sum, over the labels not in the output, of the product of the operands.
// Each output element is summed by one thread in a fixed order (double accumulator): the same bits for
// any thread count.

namespace {

struct EinsumPlan {
  std::vector<std::vector<int>> in_labels;  // per operand, per dimension
  std::vector<int> out_labels;
  std::vector<std::int64_t> extent;         // per label
};

int letter_label(const OpCtx& c, char ch) {
  if (ch >= 'a' && ch <= 'z') return ch - 'a';
  if (ch >= 'A' && ch <= 'Z') return 26 + (ch - 'A');
  c.fail(std::string("invalid character '") + ch + "' in the equation");
}

EinsumPlan plan_einsum(const OpCtx& c, const std::string& eq_in, const std::vector<const Value*>& ops) {
  std::string eq;
  for (char ch : eq_in) if (ch != ' ') eq += ch;
  const auto arrow = eq.find("->");
  const std::string lhs = eq.substr(0, arrow);
  std::vector<std::string> terms{""};
  for (char ch : lhs) {
    if (ch == ',') terms.emplace_back();
    else terms.back() += ch;
  }
  if (terms.size() != ops.size()) c.fail("the equation has " + std::to_string(terms.size()) + " operands, the node " + std::to_string(ops.size()));
  // Ellipsis dimensions: the broadcast of every operand's, right-aligned; labels 52, 53, ...
  std::size_t ell_rank = 0;
  std::vector<std::size_t> ell_of(ops.size(), 0);
  for (std::size_t t = 0; t < terms.size(); ++t) {
    const auto dots = terms[t].find("...");
    std::size_t letters = 0;
    for (char ch : terms[t]) if (ch != '.') ++letters;
    if (dots == std::string::npos) {
      if (letters != ops[t]->shape.size()) c.fail("operand " + std::to_string(t) + " has rank " + std::to_string(ops[t]->shape.size()) + ", its term '" + terms[t] + "' names " + std::to_string(letters) + " dimensions");
      continue;
    }
    if (terms[t].find("...", dots + 3) != std::string::npos) c.fail("more than one ellipsis in the term '" + terms[t] + "'");
    if (ops[t]->shape.size() < letters) c.fail("operand " + std::to_string(t) + " has fewer dimensions than its term names");
    ell_of[t] = ops[t]->shape.size() - letters;
    ell_rank = std::max(ell_rank, ell_of[t]);
  }
  EinsumPlan p;
  p.extent.assign(52 + ell_rank, -1);
  std::array<int, 52 + 64> count{};
  auto bind = [&](int label, std::int64_t d, bool ellipsis) {
    auto& e = p.extent[static_cast<std::size_t>(label)];
    if (e < 0 || (ellipsis && e == 1)) e = d;
    else if (d != e && !(ellipsis && d == 1)) c.fail("label dimensions disagree: " + std::to_string(e) + " and " + std::to_string(d));
  };
  if (ell_rank > 64) c.fail("too many dimensions under the ellipsis");
  for (std::size_t t = 0; t < terms.size(); ++t) {
    std::vector<int> labels;
    std::size_t dim = 0;
    for (std::size_t i = 0; i < terms[t].size(); ++i) {
      if (terms[t][i] == '.') {
        if (terms[t].compare(i, 3, "...") != 0) c.fail("a lone '.' in the equation");
        for (std::size_t e = 0; e < ell_of[t]; ++e) {
          const int label = static_cast<int>(52 + ell_rank - ell_of[t] + e);
          labels.push_back(label);
          bind(label, ops[t]->shape[dim++], true);
        }
        i += 2;
        continue;
      }
      const int label = letter_label(c, terms[t][i]);
      labels.push_back(label);
      ++count[static_cast<std::size_t>(label)];
      bind(label, ops[t]->shape[dim++], false);
    }
    p.in_labels.push_back(std::move(labels));
  }
  for (std::size_t e = 0; e < ell_rank; ++e)
    if (p.extent[52 + e] < 0) p.extent[52 + e] = 1;
  if (arrow == std::string::npos) {
    // Implicit output: the ellipsis dimensions, then the letters used once, alphabetically.
    for (std::size_t e = 0; e < ell_rank; ++e) p.out_labels.push_back(static_cast<int>(52 + e));
    for (int l = 0; l < 52; ++l) if (count[static_cast<std::size_t>(l)] == 1) p.out_labels.push_back(l);
  } else {
    const std::string rhs = eq.substr(arrow + 2);
    for (std::size_t i = 0; i < rhs.size(); ++i) {
      if (rhs[i] == '.') {
        if (rhs.compare(i, 3, "...") != 0) c.fail("a lone '.' in the equation's output");
        for (std::size_t e = 0; e < ell_rank; ++e) p.out_labels.push_back(static_cast<int>(52 + e));
        i += 2;
        continue;
      }
      const int l = letter_label(c, rhs[i]);
      if (p.extent[static_cast<std::size_t>(l)] < 0) c.fail(std::string("output label '") + rhs[i] + "' is not in any operand");
      if (std::find(p.out_labels.begin(), p.out_labels.end(), l) != p.out_labels.end()) c.fail(std::string("output label '") + rhs[i] + "' repeats");
      p.out_labels.push_back(l);
    }
  }
  return p;
}

// Two operands without a diagonal or a broadcast dimension, every label either batch (both operands and
// the output), row (A and the output), column (B and the output) or contracted (A and B only): one sgemm
// per batch on copies permuted to [batch, rows, K] and [batch, K, columns] (transformer attention's
// "bhqd,bhkd->bhqk" and friends). False: the generic loop runs it.
bool einsum_as_gemm(OpCtx& c, const EinsumPlan& p, const std::vector<const Value*>& ops, Value& Y) {
  if (ops.size() != 2) return false;
  const auto& la = p.in_labels[0];
  const auto& lb = p.in_labels[1];
  auto has = [](const std::vector<int>& v, int l) { return std::find(v.begin(), v.end(), l) != v.end(); };
  for (const auto* labels : {&la, &lb})
    for (std::size_t d = 0; d < labels->size(); ++d)
      if (std::count(labels->begin(), labels->end(), (*labels)[d]) != 1) return false;  // a diagonal
  std::vector<int> batch, rows, cols, red;
  for (int l : p.out_labels) {
    const bool a = has(la, l), b = has(lb, l);
    if (a && b) batch.push_back(l);
    else if (a) rows.push_back(l);
    else if (b) cols.push_back(l);
    else return false;
  }
  for (int l : la) if (!has(p.out_labels, l)) { if (!has(lb, l)) return false; red.push_back(l); }
  for (int l : lb) if (!has(p.out_labels, l) && !has(la, l)) return false;  // summed in B alone
  for (std::size_t t = 0; t < 2; ++t)
    for (std::size_t d = 0; d < p.in_labels[t].size(); ++d)
      if (ops[t]->shape[d] != p.extent[static_cast<std::size_t>(p.in_labels[t][d])]) return false;  // broadcast
  auto ext = [&](const std::vector<int>& ls) {
    std::int64_t e = 1;
    for (int l : ls) e *= p.extent[static_cast<std::size_t>(l)];
    return e;
  };
  const std::int64_t nb = ext(batch), m = ext(rows), n = ext(cols), k = ext(red);
  if (m > INT32_MAX || n > INT32_MAX || k > INT32_MAX) return false;
  // Copies of the operands and the result in the GEMM's order (label order = the copy's axes).
  auto permuted = [&](const Value& v, const std::vector<int>& from, std::vector<int> to) {
    Shape ts;
    for (int l : to) ts.push_back(p.extent[static_cast<std::size_t>(l)]);
    std::vector<std::int64_t> src_stride(to.size(), 0);
    const auto st = strides_of(v.shape);
    for (std::size_t d = 0; d < to.size(); ++d)
      src_stride[d] = st[static_cast<std::size_t>(std::find(from.begin(), from.end(), to[d]) - from.begin())];
    std::vector<float> out(static_cast<std::size_t>(v.numel()));
    std::vector<std::int64_t> idx(to.size(), 0);
    std::int64_t off = 0;
    for (std::size_t e = 0; e < out.size(); ++e) {
      out[e] = v.fp()[off];
      for (std::int64_t d = static_cast<std::int64_t>(to.size()) - 1; d >= 0; --d) {
        const auto du = static_cast<std::size_t>(d);
        off += src_stride[du];
        if (++idx[du] < ts[du]) break;
        off -= src_stride[du] * ts[du];
        idx[du] = 0;
      }
    }
    return out;
  };
  auto cat = [](std::vector<int> a, const std::vector<int>& b, const std::vector<int>& c2) {
    a.insert(a.end(), b.begin(), b.end());
    a.insert(a.end(), c2.begin(), c2.end());
    return a;
  };
  const std::vector<float> A = permuted(*ops[0], la, cat(batch, rows, red));
  const std::vector<float> B = permuted(*ops[1], lb, cat(batch, red, cols));
  std::vector<float> Cm(static_cast<std::size_t>(nb * m * n));
  // One sgemm per batch, batches over the threads (BLAS itself on one thread: the same bits for any count).
  parallel_for(nb, nb * m * n * k >= (1 << 16) ? c.threads : 1, [&](std::int64_t b0, std::int64_t b1) {
    for (std::int64_t b = b0; b < b1; ++b)
      if (k == 0) std::fill_n(Cm.data() + b * m * n, m * n, 0.0f);
      else
        blas::sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<blasint>(m), static_cast<blasint>(n), static_cast<blasint>(k), 1.0f,
                    A.data() + b * m * k, static_cast<blasint>(k), B.data() + b * k * n, static_cast<blasint>(n), 0.0f, Cm.data() + b * m * n,
                    static_cast<blasint>(n));
  });
  // The result's axes are batch, rows, cols: into the output's label order.
  Value tmp = Value::floats(Shape{});
  const std::vector<int> gemm_labels = cat(batch, rows, cols);
  Shape gs;
  for (int l : gemm_labels) gs.push_back(p.extent[static_cast<std::size_t>(l)]);
  tmp.shape = gs;
  tmp.f = std::make_shared<FloatBuf>(Cm.begin(), Cm.end());
  const std::vector<float> out = permuted(tmp, gemm_labels, p.out_labels);
  std::copy(out.begin(), out.end(), Y.mfp());
  return true;
}

}  // namespace

void op_einsum(OpCtx& c) {
  std::vector<const Value*> ops;
  for (std::size_t k = 0; k < c.n_in(); ++k) {
    ops.push_back(&c.x(k));
    if (ops.back()->is_int) c.fail("integer operands are not supported");
  }
  if (ops.empty()) c.fail("needs at least one operand");
  const EinsumPlan p = plan_einsum(c, c.node.get_s("equation", ""), ops);
  Shape s;
  for (int l : p.out_labels) s.push_back(p.extent[static_cast<std::size_t>(l)]);
  Value& Y = c.alloc(0, s);
  if (c.shape_only) return;
  if (einsum_as_gemm(c, p, ops, Y)) return;
  // Summed labels: in an operand, not in the output.
  std::vector<int> sum_labels;
  for (std::size_t l = 0; l < p.extent.size(); ++l)
    if (p.extent[l] >= 0 && std::find(p.out_labels.begin(), p.out_labels.end(), static_cast<int>(l)) == p.out_labels.end()) {
      bool used = false;
      for (auto& in : p.in_labels) used = used || std::find(in.begin(), in.end(), static_cast<int>(l)) != in.end();
      if (used) sum_labels.push_back(static_cast<int>(l));
    }
  // Strides of every operand per label (a repeated label in one operand: its diagonal; a broadcast
  // dimension of 1: stride 0).
  const std::size_t nl = p.extent.size();
  std::vector<std::vector<std::int64_t>> stride(ops.size(), std::vector<std::int64_t>(nl, 0));
  for (std::size_t t = 0; t < ops.size(); ++t) {
    const auto st = strides_of(ops[t]->shape);
    for (std::size_t d = 0; d < p.in_labels[t].size(); ++d)
      if (ops[t]->shape[d] != 1 || p.extent[static_cast<std::size_t>(p.in_labels[t][d])] == 1) stride[t][static_cast<std::size_t>(p.in_labels[t][d])] += st[d];
  }
  std::int64_t inner = 1;
  for (int l : sum_labels) inner *= p.extent[static_cast<std::size_t>(l)];
  const std::int64_t outer = Y.numel();
  if (inner > 0 && outer > (std::int64_t(1) << 36) / inner)
    c.fail("too large: " + std::to_string(outer) + " outputs x " + std::to_string(inner) + " terms each");
  float* y = Y.mfp();
  parallel_for(outer, inner * static_cast<std::int64_t>(ops.size()) * outer >= (1 << 16) ? c.threads : 1, [&](std::int64_t b, std::int64_t e) {
    std::vector<std::int64_t> oidx(p.out_labels.size()), sidx(sum_labels.size());
    for (std::int64_t o = b; o < e; ++o) {
      std::int64_t rem = o;
      for (std::int64_t d = static_cast<std::int64_t>(oidx.size()) - 1; d >= 0; --d) {
        const std::int64_t ext = p.extent[static_cast<std::size_t>(p.out_labels[static_cast<std::size_t>(d)])];
        oidx[static_cast<std::size_t>(d)] = rem % ext;
        rem /= ext;
      }
      std::vector<std::int64_t> base(ops.size(), 0);
      for (std::size_t t = 0; t < ops.size(); ++t)
        for (std::size_t d = 0; d < oidx.size(); ++d) base[t] += oidx[d] * stride[t][static_cast<std::size_t>(p.out_labels[d])];
      double acc = 0;
      std::fill(sidx.begin(), sidx.end(), 0);
      std::vector<std::int64_t> off = base;
      for (std::int64_t k = 0; k < inner; ++k) {
        double term = 1;
        for (std::size_t t = 0; t < ops.size(); ++t) term *= ops[t]->fp()[off[t]];
        acc += term;
        for (std::int64_t d = static_cast<std::int64_t>(sidx.size()) - 1; d >= 0; --d) {
          const auto l = static_cast<std::size_t>(sum_labels[static_cast<std::size_t>(d)]);
          for (std::size_t t = 0; t < ops.size(); ++t) off[t] += stride[t][l];
          if (++sidx[static_cast<std::size_t>(d)] < p.extent[l]) break;
          for (std::size_t t = 0; t < ops.size(); ++t) off[t] -= stride[t][l] * p.extent[l];
          sidx[static_cast<std::size_t>(d)] = 0;
        }
      }
      y[o] = static_cast<float>(acc);
    }
  });
}

}  // namespace qcast::nn::detail
