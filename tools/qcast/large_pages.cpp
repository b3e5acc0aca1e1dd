// Large allocations of the qcast command on transparent huge pages. A model's weights live in a few big
// vectors (620 MB for a 155M-parameter LLaMA, and its quantized copies); on 4 KiB pages every first touch
// is a page fault, and on a virtual machine each fault is a trip to the hypervisor: `qcast quantize` of
// that model spent about a third of its time there (docs/performance.md). Where the kernel's THP mode is
// `madvise` (Debian's default), memory must ask for huge pages: blocks of 2 MiB and more are allocated
// 2 MiB-aligned and marked MADV_HUGEPAGE. Everything else is plain malloc, and every block is released with
// free(), so the usual operator delete serves both. Only the command line's executable does this (not the
// library, the tests or the Python module); sanitizer builds keep their own allocator.
#include <cstddef>
#include <cstdlib>
#include <new>

#if defined(__linux__) && !defined(__SANITIZE_ADDRESS__) && !defined(QCAST_NO_LARGE_PAGES)
#if defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(memory_sanitizer) || __has_feature(thread_sanitizer)
#define QCAST_NO_LARGE_PAGES 1
#endif
#endif
#endif

#if defined(__linux__) && !defined(__SANITIZE_ADDRESS__) && !defined(QCAST_NO_LARGE_PAGES)
#include <sys/mman.h>

namespace {

constexpr std::size_t kHuge = std::size_t{2} << 20;

void* allocate(std::size_t n) {
  if (n >= kHuge) {
    const std::size_t rounded = (n + kHuge - 1) / kHuge * kHuge;
    if (void* p = std::aligned_alloc(kHuge, rounded)) {
      madvise(p, rounded, MADV_HUGEPAGE);  // advice only: a refusal leaves ordinary pages
      return p;
    }
  }
  return std::malloc(n == 0 ? 1 : n);
}

}  // namespace

void* operator new(std::size_t n) {
  if (void* p = allocate(n)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t n) {
  if (void* p = allocate(n)) return p;
  throw std::bad_alloc();
}
void* operator new(std::size_t n, const std::nothrow_t&) noexcept { return allocate(n); }
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept { return allocate(n); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }

#endif
