#include "qcast/kernels/dnnl.hpp"

#include <dlfcn.h>

#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "qcast/error.hpp"

#if __has_include(<oneapi/dnnl/dnnl.h>)
#include <oneapi/dnnl/dnnl.h>
#define QCAST_DNNL_HEADERS 1
#else
#define QCAST_DNNL_HEADERS 0
#endif

namespace qcast::kern::dnnl {

#if QCAST_DNNL_HEADERS
namespace {

// The C API functions used here, resolved from the library that dlopen loaded. The signatures are
// oneDNN 2.x's (Debian 12 ships 2.6); the soname pins the major version.
struct Api {
  void* lib = nullptr;
  decltype(&dnnl_engine_create) engine_create = nullptr;
  decltype(&dnnl_stream_create) stream_create = nullptr;
  decltype(&dnnl_stream_wait) stream_wait = nullptr;
  decltype(&dnnl_stream_destroy) stream_destroy = nullptr;
  decltype(&dnnl_memory_desc_init_by_tag) md_init_by_tag = nullptr;
  decltype(&dnnl_memory_desc_equal) md_equal = nullptr;
  decltype(&dnnl_memory_desc_get_size) md_get_size = nullptr;
  decltype(&dnnl_memory_create) memory_create = nullptr;
  decltype(&dnnl_memory_destroy) memory_destroy = nullptr;
  decltype(&dnnl_memory_get_data_handle) memory_get_data_handle = nullptr;
  decltype(&dnnl_dilated_convolution_forward_desc_init) conv_desc_init = nullptr;
  decltype(&dnnl_pooling_v2_forward_desc_init) pool_desc_init = nullptr;
  decltype(&dnnl_primitive_attr_create) attr_create = nullptr;
  decltype(&dnnl_primitive_attr_destroy) attr_destroy = nullptr;
  decltype(&dnnl_primitive_attr_set_post_ops) attr_set_post_ops = nullptr;
  decltype(&dnnl_post_ops_create) post_ops_create = nullptr;
  decltype(&dnnl_post_ops_destroy) post_ops_destroy = nullptr;
  decltype(&dnnl_post_ops_append_sum) post_ops_append_sum = nullptr;
  decltype(&dnnl_post_ops_append_eltwise) post_ops_append_eltwise = nullptr;
  decltype(&dnnl_primitive_desc_create) pd_create = nullptr;
  decltype(&dnnl_primitive_desc_destroy) pd_destroy = nullptr;
  decltype(&dnnl_primitive_desc_query_md) pd_query_md = nullptr;
  decltype(&dnnl_primitive_desc_query) pd_query = nullptr;
  decltype(&dnnl_reorder_primitive_desc_create) reorder_pd_create = nullptr;
  decltype(&dnnl_primitive_create) primitive_create = nullptr;
  decltype(&dnnl_primitive_destroy) primitive_destroy = nullptr;
  decltype(&dnnl_primitive_execute) primitive_execute = nullptr;
  void (*omp_set_num_threads)(int) = nullptr;
  dnnl_engine_t engine = nullptr;
};

template <class Fn>
bool resolve(void* lib, const char* name, Fn& fn) {
  fn = reinterpret_cast<Fn>(::dlsym(lib, name));
  return fn != nullptr;
}

// Under AddressSanitizer oneDNN is not loaded: LeakSanitizer's exit-time scan crashes on the dynamic TLS
// of the dlopen'd library ("Tracer caught signal 11" at "DTLS ... at 0x20bb-0x24000031bd"), and its JIT
// code cannot be instrumented anyway. Sanitizer builds run every Conv on qcast's own operators.
#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define QCAST_DNNL_OFF_UNDER_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define QCAST_DNNL_OFF_UNDER_ASAN 1
#endif

int omp_threads(int threads) { return threads < 1 ? 1 : threads; }

const Api* load() {
  static Api api;
  static bool ok = false;
  static std::once_flag once;
  std::call_once(once, [] {
#ifdef QCAST_DNNL_OFF_UNDER_ASAN
    return;
#endif
    const char* env = std::getenv("QCAST_DNNL");
    if (env && std::string(env) == "0") return;
    void* lib = ::dlopen("libdnnl.so.2", RTLD_NOW | RTLD_LOCAL);
    if (!lib) return;
    Api a;
    a.lib = lib;
    bool all = resolve(lib, "dnnl_engine_create", a.engine_create) && resolve(lib, "dnnl_stream_create", a.stream_create) &&
               resolve(lib, "dnnl_stream_wait", a.stream_wait) && resolve(lib, "dnnl_stream_destroy", a.stream_destroy) && resolve(lib, "dnnl_memory_desc_init_by_tag", a.md_init_by_tag) &&
               resolve(lib, "dnnl_memory_desc_equal", a.md_equal) && resolve(lib, "dnnl_memory_desc_get_size", a.md_get_size) &&
               resolve(lib, "dnnl_memory_create", a.memory_create) && resolve(lib, "dnnl_memory_destroy", a.memory_destroy) &&
               resolve(lib, "dnnl_memory_get_data_handle", a.memory_get_data_handle) &&
               resolve(lib, "dnnl_dilated_convolution_forward_desc_init", a.conv_desc_init) &&
               resolve(lib, "dnnl_pooling_v2_forward_desc_init", a.pool_desc_init) &&
               resolve(lib, "dnnl_primitive_attr_create", a.attr_create) && resolve(lib, "dnnl_primitive_attr_destroy", a.attr_destroy) &&
               resolve(lib, "dnnl_primitive_attr_set_post_ops", a.attr_set_post_ops) &&
               resolve(lib, "dnnl_post_ops_create", a.post_ops_create) && resolve(lib, "dnnl_post_ops_destroy", a.post_ops_destroy) &&
               resolve(lib, "dnnl_post_ops_append_sum", a.post_ops_append_sum) &&
               resolve(lib, "dnnl_post_ops_append_eltwise", a.post_ops_append_eltwise) &&
               resolve(lib, "dnnl_primitive_desc_create", a.pd_create) && resolve(lib, "dnnl_primitive_desc_destroy", a.pd_destroy) &&
               resolve(lib, "dnnl_primitive_desc_query_md", a.pd_query_md) && resolve(lib, "dnnl_primitive_desc_query", a.pd_query) &&
               resolve(lib, "dnnl_reorder_primitive_desc_create", a.reorder_pd_create) &&
               resolve(lib, "dnnl_primitive_create", a.primitive_create) && resolve(lib, "dnnl_primitive_destroy", a.primitive_destroy) &&
               resolve(lib, "dnnl_primitive_execute", a.primitive_execute) &&
               // libdnnl's OpenMP runtime (libgomp), loaded with it: its thread count is set per call.
               resolve(lib, "omp_set_num_threads", a.omp_set_num_threads);
    if (!all || a.engine_create(&a.engine, dnnl_cpu, 0) != dnnl_success) return;
    api = a;
    ok = true;
  });
  return ok ? &api : nullptr;
}

const Api& api() {
  const Api* a = load();
  if (!a) throw Error("oneDNN (libdnnl.so.2) is not available; install Debian's libdnnl2.6");
  return *a;
}

void check(dnnl_status_t s, const char* what) {
  if (s != dnnl_success) throw Error(std::string("oneDNN: ") + what + " failed (status " + std::to_string(static_cast<int>(s)) + ")");
}

dnnl_memory_desc_t desc(const std::vector<std::int64_t>& dims, dnnl_format_tag_t tag) {
  dnnl_memory_desc_t md;
  dnnl_dims_t d{};
  for (std::size_t k = 0; k < dims.size(); ++k) d[k] = dims[k];
  check(api().md_init_by_tag(&md, static_cast<int>(dims.size()), d, dnnl_f32, tag), "memory_desc_init_by_tag");
  return md;
}

// Owners of C handles.
struct MemoryOwner {
  dnnl_memory_t m = nullptr;
  ~MemoryOwner() { if (m) api().memory_destroy(m); }
};
struct PrimitiveOwner {
  dnnl_primitive_t p = nullptr;
  ~PrimitiveOwner() { if (p) api().primitive_destroy(p); }
};
struct PdOwner {
  dnnl_primitive_desc_t pd = nullptr;
  ~PdOwner() { if (pd) api().pd_destroy(pd); }
};

// A stream per thread: streams are cheap but not meant to be shared between threads.
dnnl_stream_t stream() {
  struct Holder {
    dnnl_stream_t s = nullptr;
    // The library is never unloaded, so a thread's stream can go with the thread.
    ~Holder() { if (s) api().stream_destroy(s); }
  };
  thread_local Holder h;
  if (!h.s) check(api().stream_create(&h.s, api().engine, dnnl_stream_default_flags), "stream_create");
  return h.s;
}

void execute(dnnl_primitive_t p, std::initializer_list<dnnl_exec_arg_t> args, int threads) {
  const Api& a = api();
  a.omp_set_num_threads(omp_threads(threads));
  dnnl_stream_t s = stream();
  check(a.primitive_execute(p, s, static_cast<int>(args.size()), args.begin()), "primitive_execute");
  check(a.stream_wait(s), "stream_wait");
}

// Copies between two memories of the same logical shape (any layouts). The reorder primitives are made
// once per pair of layouts and thread count: creating one took a sixth of a LeNet-5 batch.
void reorder(dnnl_memory_t from, const dnnl_memory_desc_t& from_md, dnnl_memory_t to, const dnnl_memory_desc_t& to_md, int threads) {
  const Api& a = api();
  static std::mutex mu;
  // Never destroyed: primitives outlive the exit-time destructors that could otherwise run after oneDNN's.
  static auto& cache = *new std::map<std::string, std::shared_ptr<PrimitiveOwner>>();
  // Memory descriptors are plain structs that oneDNN zero-fills before setting: their bytes are a key.
  std::string key(reinterpret_cast<const char*>(&from_md), sizeof from_md);
  key.append(reinterpret_cast<const char*>(&to_md), sizeof to_md);
  key.append(reinterpret_cast<const char*>(&threads), sizeof threads);
  std::shared_ptr<PrimitiveOwner> p;
  {
    std::lock_guard lock(mu);
    auto it = cache.find(key);
    if (it != cache.end()) p = it->second;
  }
  if (!p) {
    PdOwner pd;
    a.omp_set_num_threads(omp_threads(threads));
    check(a.reorder_pd_create(&pd.pd, &from_md, a.engine, &to_md, a.engine, nullptr), "reorder_primitive_desc_create");
    p = std::make_shared<PrimitiveOwner>();
    check(a.primitive_create(&p->p, pd.pd), "primitive_create (reorder)");
    std::lock_guard lock(mu);
    if (cache.size() >= 1024) cache.clear();  // bounded: shapes seen by a long sweep
    cache.emplace(key, p);
  }
  execute(p->p, {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, to}}, threads);
}

}  // namespace

struct Act::Impl {
  std::array<std::int64_t, 4> dims{};
  dnnl_memory_desc_t md{};
  MemoryOwner mem;
  bool wrapped = false;  // a caller's buffer (never taken over as an output)
};

namespace {
std::shared_ptr<Act::Impl> make_act(const std::array<std::int64_t, 4>& dims, const dnnl_memory_desc_t& md, const float* wrap) {
  auto p = std::make_shared<Act::Impl>();
  p->dims = dims;
  p->md = md;
  p->wrapped = wrap != nullptr;
  // DNNL_MEMORY_ALLOCATE: oneDNN allocates (aligned) and frees with the memory object.
  check(api().memory_create(&p->mem.m, &p->md, api().engine, wrap ? const_cast<float*>(wrap) : DNNL_MEMORY_ALLOCATE), "memory_create");
  return p;
}
}  // namespace

bool available() { return load() != nullptr; }

Act Act::wrap_nchw(const float* x, const std::array<std::int64_t, 4>& dims) {
  return Act(make_act(dims, desc({dims[0], dims[1], dims[2], dims[3]}, dnnl_nchw), x));
}

const std::array<std::int64_t, 4>& Act::dims() const { return p_->dims; }

void Act::to_nchw(float* out, int threads) const {
  const auto& d = p_->dims;
  auto plain = make_act(d, desc({d[0], d[1], d[2], d[3]}, dnnl_nchw), out);
  if (api().md_equal(&p_->md, &plain->md)) {
    void* src = nullptr;
    check(api().memory_get_data_handle(p_->mem.m, &src), "memory_get_data_handle");
    std::memcpy(out, src, api().md_get_size(&plain->md));
    return;
  }
  reorder(p_->mem.m, p_->md, plain->mem.m, plain->md, threads);
}

float* Act::nhwc_data() const {
  const auto& d = p_->dims;
  const dnnl_memory_desc_t nhwc = desc({d[0], d[1], d[2], d[3]}, dnnl_nhwc);
  if (!api().md_equal(&p_->md, &nhwc)) return nullptr;
  void* h = nullptr;
  check(api().memory_get_data_handle(p_->mem.m, &h), "memory_get_data_handle");
  return static_cast<float*>(h);
}

Act Act::empty_like() const { return Act(make_act(p_->dims, p_->md, nullptr)); }

Act pool(const PoolSpec& s, const Act& src, int threads) {
  const Api& a = api();
  struct Prepared {
    PdOwner pd;
    PrimitiveOwner prim;
    dnnl_memory_desc_t dst_md{};
  };
  static std::mutex mu;
  static auto& cache = *new std::map<std::string, std::shared_ptr<Prepared>>();  // never destroyed, as reorder's
  const dnnl_memory_desc_t& src_md = src.impl()->md;
  std::string key(reinterpret_cast<const char*>(&src_md), sizeof src_md);
  const std::int64_t fields[] = {static_cast<std::int64_t>(s.kind), s.N, s.C, s.H, s.W, s.kh, s.kw, s.sh, s.sw, s.dh, s.dw,
                                 s.pt, s.pl, s.pb, s.pr, s.P, s.Q, threads};  // not the struct's bytes: it has padding
  key.append(reinterpret_cast<const char*>(fields), sizeof fields);
  std::shared_ptr<Prepared> p;
  {
    std::lock_guard lock(mu);
    auto it = cache.find(key);
    if (it != cache.end()) p = it->second;
  }
  if (!p) {
    p = std::make_shared<Prepared>();
    dnnl_memory_desc_t dst_any = desc({s.N, s.C, s.P, s.Q}, dnnl_format_tag_any);
    dnnl_dims_t strides{s.sh, s.sw}, kernel{s.kh, s.kw}, dil{s.dh - 1, s.dw - 1}, pad_l{s.pt, s.pl}, pad_r{s.pb, s.pr};
    const dnnl_alg_kind_t alg = s.kind == PoolSpec::Kind::Max ? dnnl_pooling_max
                                : s.kind == PoolSpec::Kind::AvgInclude ? dnnl_pooling_avg_include_padding
                                                                       : dnnl_pooling_avg_exclude_padding;
    dnnl_pooling_v2_desc_t pd_desc;
    check(a.pool_desc_init(&pd_desc, dnnl_forward_inference, alg, &src_md, &dst_any, strides, kernel, dil, pad_l, pad_r), "pooling_forward_desc_init");
    a.omp_set_num_threads(omp_threads(threads));
    check(a.pd_create(&p->pd.pd, &pd_desc, nullptr, a.engine, nullptr), "pooling primitive_desc_create");
    check(a.primitive_create(&p->prim.p, p->pd.pd), "primitive_create (pooling)");
    p->dst_md = *a.pd_query_md(p->pd.pd, dnnl_query_dst_md, 0);
    std::lock_guard lock(mu);
    if (cache.size() >= 1024) cache.clear();
    cache.emplace(key, p);
  }
  auto out = make_act({s.N, s.C, s.P, s.Q}, p->dst_md, nullptr);
  execute(p->prim.p, {{DNNL_ARG_SRC, src.impl()->mem.m}, {DNNL_ARG_DST, out->mem.m}}, threads);
  return Act(std::move(out));
}

struct Conv::Impl {
  ConvSpec spec;
  PdOwner pd;
  PrimitiveOwner prim;
  dnnl_memory_desc_t src_md{}, dst_md{};
  std::shared_ptr<Act::Impl> weights, bias;
};

Conv::Conv(const ConvSpec& s, const float* weights, const float* bias, int threads) : p_(std::make_shared<Impl>()) {
  const Api& a = api();
  p_->spec = s;
  const bool grouped = s.G > 1;
  const std::vector<std::int64_t> wdims = grouped ? std::vector<std::int64_t>{s.G, s.M / s.G, s.C / s.G, s.kh, s.kw}
                                                  : std::vector<std::int64_t>{s.M, s.C, s.kh, s.kw};
  dnnl_memory_desc_t src_any = desc({s.N, s.C, s.H, s.W}, dnnl_format_tag_any);
  dnnl_memory_desc_t w_any = desc(wdims, dnnl_format_tag_any);
  dnnl_memory_desc_t b_md = desc({s.M}, dnnl_x);
  dnnl_memory_desc_t dst_any = desc({s.N, s.M, s.P, s.Q}, dnnl_format_tag_any);
  dnnl_dims_t strides{s.sh, s.sw}, dil{s.dh - 1, s.dw - 1}, pad_l{s.pt, s.pl}, pad_r{s.pb, s.pr};
  dnnl_convolution_desc_t cd;
  check(a.conv_desc_init(&cd, dnnl_forward_inference, dnnl_convolution_direct, &src_any, &w_any, bias ? &b_md : nullptr, &dst_any,
                         strides, dil, pad_l, pad_r),
        "convolution_forward_desc_init");
  dnnl_post_ops_t po = nullptr;
  dnnl_primitive_attr_t attr = nullptr;
  check(a.post_ops_create(&po), "post_ops_create");
  if (s.sum) check(a.post_ops_append_sum(po, 1.0f), "post_ops_append_sum");
  if (s.relu) check(a.post_ops_append_eltwise(po, 1.0f, dnnl_eltwise_relu, 0.0f, 0.0f), "post_ops_append_eltwise");
  check(a.attr_create(&attr), "primitive_attr_create");
  dnnl_status_t st = a.attr_set_post_ops(attr, po);
  // The primitive's blocking depends on the thread count oneDNN sees when it is created.
  if (st == dnnl_success) {
    a.omp_set_num_threads(omp_threads(threads));
    st = a.pd_create(&p_->pd.pd, &cd, attr, a.engine, nullptr);
  }
  a.attr_destroy(attr);
  a.post_ops_destroy(po);
  check(st, "convolution primitive_desc_create");
  check(a.primitive_create(&p_->prim.p, p_->pd.pd), "primitive_create (convolution)");
  p_->src_md = *a.pd_query_md(p_->pd.pd, dnnl_query_src_md, 0);
  p_->dst_md = *a.pd_query_md(p_->pd.pd, dnnl_query_dst_md, 0);
  // Weights (and bias) in the primitive's layout, once.
  const dnnl_memory_desc_t w_md = *a.pd_query_md(p_->pd.pd, dnnl_query_weights_md, 0);
  auto w_plain = make_act({}, desc(wdims, grouped ? dnnl_goihw : dnnl_oihw), weights);
  p_->weights = make_act({}, w_md, nullptr);
  reorder(w_plain->mem.m, w_plain->md, p_->weights->mem.m, p_->weights->md, threads);
  if (bias) {
    p_->bias = make_act({}, b_md, nullptr);
    void* dst = nullptr;
    check(a.memory_get_data_handle(p_->bias->mem.m, &dst), "memory_get_data_handle");
    std::memcpy(dst, bias, static_cast<std::size_t>(s.M) * sizeof(float));
  }
}

const ConvSpec& Conv::spec() const { return p_->spec; }

Act Conv::run(const Act& src, Act sum, int threads) const {
  const Api& a = api();
  const ConvSpec& s = p_->spec;
  // The input in the primitive's layout (a copy only when the producer chose another).
  std::shared_ptr<Act::Impl> in = src.impl();
  if (!a.md_equal(&in->md, &p_->src_md)) {
    auto conv_in = make_act(in->dims, p_->src_md, nullptr);
    reorder(in->mem.m, in->md, conv_in->mem.m, conv_in->md, threads);
    in = std::move(conv_in);
  }
  std::shared_ptr<Act::Impl> out;
  const std::array<std::int64_t, 4> odims{s.N, s.M, s.P, s.Q};
  if (s.sum) {
    if (!sum) throw Error("oneDNN convolution: the sum operand is missing");
    std::shared_ptr<Act::Impl> addend = sum.impl();
    sum = Act();  // drop this function's own reference before counting
    if (addend.use_count() == 1 && !addend->wrapped && a.md_equal(&addend->md, &p_->dst_md)) {
      out = std::move(addend);
    } else {
      out = make_act(odims, p_->dst_md, nullptr);
      reorder(addend->mem.m, addend->md, out->mem.m, out->md, threads);
    }
  } else {
    out = make_act(odims, p_->dst_md, nullptr);
  }
  if (p_->bias)
    execute(p_->prim.p, {{DNNL_ARG_SRC, in->mem.m}, {DNNL_ARG_WEIGHTS, p_->weights->mem.m}, {DNNL_ARG_BIAS, p_->bias->mem.m}, {DNNL_ARG_DST, out->mem.m}}, threads);
  else
    execute(p_->prim.p, {{DNNL_ARG_SRC, in->mem.m}, {DNNL_ARG_WEIGHTS, p_->weights->mem.m}, {DNNL_ARG_DST, out->mem.m}}, threads);
  return Act(std::move(out));
}

std::string Conv::implementation() const {
  const char* name = nullptr;
  if (api().pd_query(p_->pd.pd, dnnl_query_impl_info_str, 0, &name) != dnnl_success || !name) return "?";
  return name;
}

#else  // built without oneDNN's headers: never available

struct Act::Impl {
  std::array<std::int64_t, 4> dims{};
};
struct Conv::Impl {
  ConvSpec spec;
};
bool available() { return false; }
Act Act::wrap_nchw(const float*, const std::array<std::int64_t, 4>&) { throw Error("qcast was built without oneDNN"); }
const std::array<std::int64_t, 4>& Act::dims() const { return p_->dims; }
void Act::to_nchw(float*, int) const { throw Error("qcast was built without oneDNN"); }
float* Act::nhwc_data() const { return nullptr; }
Act Act::empty_like() const { throw Error("qcast was built without oneDNN"); }
Act pool(const PoolSpec&, const Act&, int) { throw Error("qcast was built without oneDNN"); }
Conv::Conv(const ConvSpec&, const float*, const float*, int) { throw Error("qcast was built without oneDNN"); }
const ConvSpec& Conv::spec() const { return p_->spec; }
Act Conv::run(const Act&, Act, int) const { throw Error("qcast was built without oneDNN"); }
std::string Conv::implementation() const { return ""; }

#endif

}  // namespace qcast::kern::dnnl
