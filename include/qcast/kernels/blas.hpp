// Dense math from OpenBLAS, loaded on first use.
//
// qcast links OpenBLAS lazily (dlopen of libopenblas.so.0 on the first call here) instead of as a
// DT_NEEDED library: loading it cost ~5 ms of every command's start-up, and its worker threads, which it
// starts at load time, spin on sched_yield for ~0.1 s, a whole core of a 2-core machine taken from
// qcast's own threads during short commands such as `qcast cast`, which never needs BLAS. The functions
// keep the CBLAS / LAPACK signatures (types from <cblas.h>) under qcast::blas names, so the library's own
// symbols are never interposed.
#pragma once
#include <cblas.h>

#include <cstddef>

namespace qcast::blas {

void sgemm(CBLAS_ORDER order, CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, blasint m, blasint n, blasint k, float alpha,
           const float* a, blasint lda, const float* b, blasint ldb, float beta, float* c, blasint ldc);
void dgemm(CBLAS_ORDER order, CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, blasint m, blasint n, blasint k, double alpha,
           const double* a, blasint lda, const double* b, blasint ldb, double beta, double* c, blasint ldc);
void sgemv(CBLAS_ORDER order, CBLAS_TRANSPOSE t, blasint m, blasint n, float alpha, const float* a, blasint lda,
           const float* x, blasint incx, float beta, float* y, blasint incy);
void ssyrk(CBLAS_ORDER order, CBLAS_UPLO uplo, CBLAS_TRANSPOSE t, blasint n, blasint k, float alpha, const float* a,
           blasint lda, float beta, float* c, blasint ldc);
// LAPACK (Fortran ABI: pointers, and the hidden lengths of the character arguments).
void spotrf(const char* uplo, const int* n, float* a, const int* lda, int* info, std::size_t uplo_len);
void dpotrf(const char* uplo, const int* n, double* a, const int* lda, int* info, std::size_t uplo_len);
void spotri(const char* uplo, const int* n, float* a, const int* lda, int* info, std::size_t uplo_len);
void dpotri(const char* uplo, const int* n, double* a, const int* lda, int* info, std::size_t uplo_len);
void dgesdd(const char* jobz, const int* m, const int* n, double* a, const int* lda, double* s, double* u,
            const int* ldu, double* vt, const int* ldvt, double* work, const int* lwork, int* iwork, int* info,
            std::size_t jobz_len);
// OpenBLAS's thread count (its own pool, used inside each call).
void set_num_threads(int n);
int get_num_threads();

}  // namespace qcast::blas
