#include "qcast/file.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <signal.h>

#include <atomic>
#include <filesystem>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <type_traits>

#include "qcast/error.hpp"

namespace qcast {

MappedFile::MappedFile(const std::string& path) : path_(path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw Error("cannot open '" + path + "': " + std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    throw Error("'" + path + "' is not a regular file");
  }
  size_ = static_cast<std::size_t>(st.st_size);
  if (size_ > 0) {
    void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      ::close(fd);
      throw Error("cannot map '" + path + "': " + std::strerror(errno));
    }
    data_ = static_cast<const std::uint8_t*>(p);
    mapped_ = true;
  }
  fd_ = fd;
}

MappedFile::~MappedFile() {
  if (mapped_) ::munmap(const_cast<std::uint8_t*>(data_), size_);
  if (fd_ >= 0) ::close(fd_);
}

// Moves n bytes with io(p, n, offset), a read (Byte = char) or write (const char) call returning the bytes
// moved, 0 when nothing more can move, or -1 with errno; retries where a signal interrupted it. `what`
// names the file in errors.
template <class Byte, class Io>
static void transfer_all(Byte* p, std::size_t n, std::uint64_t offset, Io io, const std::string& what) {
  constexpr bool kRead = !std::is_const_v<Byte>;
  while (n > 0) {
    const ssize_t r = io(p, n, offset);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) throw Error(std::string(kRead ? "cannot read '" : "cannot write '") + what + "': " + std::strerror(errno));
    if (r == 0) throw Error(kRead ? "'" + what + "' became shorter while it was being read" : "cannot write '" + what + "': nothing was written");
    p += r;
    n -= static_cast<std::size_t>(r);
    offset += static_cast<std::uint64_t>(r);
  }
}

void MappedFile::read_at(void* dst, std::size_t n, std::uint64_t offset) const {
  transfer_all(static_cast<char*>(dst), n, offset,
               [&](char* p, std::size_t k, std::uint64_t off) { return ::pread(fd_, p, k, static_cast<off_t>(off)); }, path_);
}

static std::string temp_name(const std::string& path) {
  static std::atomic<unsigned> counter{0};
  return path + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(counter++);
}

// Temporary files that exist right now, for the signal handler: fixed slots (no allocation, no locks), a
// slot's path is written before its state becomes kActive and read by the handler only in that state.
namespace {
constexpr int kTempSlots = 64;
constexpr int kFree = 0, kFilling = 1, kActive = 2;
struct TempSlot {
  std::atomic<int> state{kFree};
  char path[4096];
};
TempSlot g_temps[kTempSlots];
static_assert(std::atomic<int>::is_always_lock_free, "the signal handler needs lock-free atomics");

extern "C" void remove_temps_and_reraise(int sig) {
  const int saved = errno;
  remove_registered_temp_files();
  errno = saved;
  // SA_RESETHAND restored the default action: raising the signal again ends the process as it would have.
  ::raise(sig);
}
}  // namespace

int register_temp_file(const std::string& path) {
  if (path.size() >= sizeof(g_temps[0].path)) return -1;
  for (int k = 0; k < kTempSlots; ++k) {
    int expected = kFree;
    if (!g_temps[k].state.compare_exchange_strong(expected, kFilling)) continue;
    std::memcpy(g_temps[k].path, path.c_str(), path.size() + 1);
    g_temps[k].state.store(kActive);
    return k;
  }
  return -1;  // more than kTempSlots at once: still removed on every normal path, only not on a signal
}

void unregister_temp_file(int slot) {
  if (slot >= 0 && slot < kTempSlots) g_temps[slot].state.store(kFree);
}

void remove_registered_temp_files() noexcept {
  for (auto& t : g_temps)
    if (t.state.load() == kActive) ::unlink(t.path);
}

void install_temp_file_signal_handlers() {
  struct sigaction sa {};
  sa.sa_handler = remove_temps_and_reraise;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESETHAND;
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) {
    struct sigaction old {};
    // A signal the caller ignores (nohup, a shell's background job) stays ignored.
    if (::sigaction(sig, nullptr, &old) == 0 && old.sa_handler == SIG_IGN) continue;
    ::sigaction(sig, &sa, nullptr);
  }
}

TempFileGuard::TempFileGuard(std::string path) : path_(std::move(path)), slot_(register_temp_file(path_)) {}

TempFileGuard::~TempFileGuard() {
  if (!released_) ::unlink(path_.c_str());
  unregister_temp_file(slot_);
}

void TempFileGuard::release() {
  released_ = true;
  unregister_temp_file(slot_);
  slot_ = -1;
}

void check_output_path(const std::string& path, const std::string& what) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (fs::is_directory(path, ec)) throw Error(what + " '" + path + "' is a directory");
  const fs::path parent = fs::path(path).parent_path();
  const std::string dir = parent.empty() ? "." : parent.string();
  if (!fs::is_directory(dir, ec)) throw Error(what + " '" + path + "': directory '" + dir + "' does not exist");
  if (::access(dir.c_str(), W_OK | X_OK) != 0) throw Error(what + " '" + path + "': directory '" + dir + "' is not writable");
}

void write_all(int fd, const void* data, std::size_t n, const std::string& what) {
  transfer_all(static_cast<const char*>(data), n, 0,
               [&](const char* p, std::size_t k, std::uint64_t) { return ::write(fd, p, k); }, what);
}

void pwrite_all(int fd, const void* data, std::size_t n, std::uint64_t offset, const std::string& what) {
  transfer_all(static_cast<const char*>(data), n, offset,
               [&](const char* p, std::size_t k, std::uint64_t off) { return ::pwrite(fd, p, k, static_cast<off_t>(off)); }, what);
}

void write_file_atomic(const std::string& path, const std::function<void(int fd)>& fill) {
  TempFileGuard tmp(temp_name(path));  // registered before it exists: a signal removes it from then on
  int fd = ::open(tmp.path().c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) {
    const int e = errno;
    tmp.release();  // not ours to remove
    throw Error("cannot create '" + path + "': " + std::strerror(e));
  }
  try {
    fill(fd);
  } catch (...) {
    ::close(fd);
    throw;
  }
  if (::close(fd) != 0 || ::rename(tmp.path().c_str(), path.c_str()) != 0) {
    int e = errno;
    throw Error("cannot write '" + path + "': " + std::strerror(e));
  }
  tmp.release();
}

OutputMap::OutputMap(const std::string& path, std::size_t size) : path_(path), tmp_(temp_name(path)), size_(size) {
  slot_ = register_temp_file(tmp_);
  fd_ = ::open(tmp_.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd_ < 0) {
    const int e = errno;
    unregister_temp_file(slot_);
    throw Error("cannot create '" + path + "': " + std::strerror(e));
  }
  if (size_ > 0) {
    if (::ftruncate(fd_, static_cast<off_t>(size_)) != 0) {
      int e = errno;
      ::close(fd_);
      ::unlink(tmp_.c_str());
      unregister_temp_file(slot_);
      throw Error("cannot size '" + path + "': " + std::strerror(e));
    }
    void* p = ::mmap(nullptr, size_, PROT_READ | PROT_WRITE, MAP_SHARED, fd_, 0);
    if (p == MAP_FAILED) {
      int e = errno;
      ::close(fd_);
      ::unlink(tmp_.c_str());
      unregister_temp_file(slot_);
      throw Error("cannot map '" + path + "' for writing: " + std::strerror(e));
    }
    data_ = static_cast<std::uint8_t*>(p);
  }
}

OutputMap::~OutputMap() {
  if (data_) ::munmap(data_, size_);
  if (fd_ >= 0) ::close(fd_);
  if (!committed_) ::unlink(tmp_.c_str());
  unregister_temp_file(slot_);
}

void OutputMap::commit() {
  if (data_) {
    ::munmap(data_, size_);
    data_ = nullptr;
  }
  int rc = ::close(fd_);
  fd_ = -1;
  if (rc != 0 || ::rename(tmp_.c_str(), path_.c_str()) != 0) throw Error("cannot write '" + path_ + "': " + std::strerror(errno));
  committed_ = true;
}

}  // namespace qcast
