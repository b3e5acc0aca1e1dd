#include "qcast/kernels/blas.hpp"

#include <dlfcn.h>

#include <mutex>
#include <string>

#include "qcast/error.hpp"

namespace qcast::blas {
namespace {

void* library() {
  static void* handle = nullptr;
  static std::once_flag once;
  std::call_once(once, [] { handle = ::dlopen("libopenblas.so.0", RTLD_NOW | RTLD_LOCAL); });
  if (!handle) {
    const char* why = ::dlerror();
    throw Error(std::string("cannot load OpenBLAS (libopenblas.so.0): ") + (why ? why : "not found") +
                "; install Debian's libopenblas0-pthread");
  }
  return handle;
}

// The function `name` of the library, looked up once per call site type.
template <class Fn>
Fn symbol(const char* name) {
  void* p = ::dlsym(library(), name);
  if (!p) throw Error(std::string("OpenBLAS has no function '") + name + "'");
  return reinterpret_cast<Fn>(p);
}

#define QCAST_BLAS_FN(name, Type) \
  static const auto fn = symbol<Type>(name);

}  // namespace

void sgemm(CBLAS_ORDER order, CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, blasint m, blasint n, blasint k, float alpha,
           const float* a, blasint lda, const float* b, blasint ldb, float beta, float* c, blasint ldc) {
  QCAST_BLAS_FN("cblas_sgemm", decltype(&cblas_sgemm))
  fn(order, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}
void dgemm(CBLAS_ORDER order, CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, blasint m, blasint n, blasint k, double alpha,
           const double* a, blasint lda, const double* b, blasint ldb, double beta, double* c, blasint ldc) {
  QCAST_BLAS_FN("cblas_dgemm", decltype(&cblas_dgemm))
  fn(order, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}
void sgemv(CBLAS_ORDER order, CBLAS_TRANSPOSE t, blasint m, blasint n, float alpha, const float* a, blasint lda,
           const float* x, blasint incx, float beta, float* y, blasint incy) {
  QCAST_BLAS_FN("cblas_sgemv", decltype(&cblas_sgemv))
  fn(order, t, m, n, alpha, a, lda, x, incx, beta, y, incy);
}
void ssyrk(CBLAS_ORDER order, CBLAS_UPLO uplo, CBLAS_TRANSPOSE t, blasint n, blasint k, float alpha, const float* a,
           blasint lda, float beta, float* c, blasint ldc) {
  QCAST_BLAS_FN("cblas_ssyrk", decltype(&cblas_ssyrk))
  fn(order, uplo, t, n, k, alpha, a, lda, beta, c, ldc);
}

using PotrfS = void (*)(const char*, const int*, float*, const int*, int*, std::size_t);
using PotrfD = void (*)(const char*, const int*, double*, const int*, int*, std::size_t);
void spotrf(const char* uplo, const int* n, float* a, const int* lda, int* info, std::size_t len) {
  QCAST_BLAS_FN("spotrf_", PotrfS)
  fn(uplo, n, a, lda, info, len);
}
void dpotrf(const char* uplo, const int* n, double* a, const int* lda, int* info, std::size_t len) {
  QCAST_BLAS_FN("dpotrf_", PotrfD)
  fn(uplo, n, a, lda, info, len);
}
void spotri(const char* uplo, const int* n, float* a, const int* lda, int* info, std::size_t len) {
  QCAST_BLAS_FN("spotri_", PotrfS)
  fn(uplo, n, a, lda, info, len);
}
void dpotri(const char* uplo, const int* n, double* a, const int* lda, int* info, std::size_t len) {
  QCAST_BLAS_FN("dpotri_", PotrfD)
  fn(uplo, n, a, lda, info, len);
}
void dgesdd(const char* jobz, const int* m, const int* n, double* a, const int* lda, double* s, double* u,
            const int* ldu, double* vt, const int* ldvt, double* work, const int* lwork, int* iwork, int* info,
            std::size_t len) {
  using Fn = void (*)(const char*, const int*, const int*, double*, const int*, double*, double*, const int*, double*,
                      const int*, double*, const int*, int*, int*, std::size_t);
  QCAST_BLAS_FN("dgesdd_", Fn)
  fn(jobz, m, n, a, lda, s, u, ldu, vt, ldvt, work, lwork, iwork, info, len);
}

void set_num_threads(int n) {
  QCAST_BLAS_FN("openblas_set_num_threads", void (*)(int))
  fn(n);
}
int get_num_threads() {
  QCAST_BLAS_FN("openblas_get_num_threads", int (*)())
  return fn();
}

}  // namespace qcast::blas
