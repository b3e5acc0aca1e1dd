#include "qcast/file.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
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

void write_all(int fd, const void* data, std::size_t n, const std::string& what) {
  transfer_all(static_cast<const char*>(data), n, 0,
               [&](const char* p, std::size_t k, std::uint64_t) { return ::write(fd, p, k); }, what);
}

void pwrite_all(int fd, const void* data, std::size_t n, std::uint64_t offset, const std::string& what) {
  transfer_all(static_cast<const char*>(data), n, offset,
               [&](const char* p, std::size_t k, std::uint64_t off) { return ::pwrite(fd, p, k, static_cast<off_t>(off)); }, what);
}

void write_file_atomic(const std::string& path, const std::function<void(int fd)>& fill) {
  const std::string tmp = temp_name(path);
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) throw Error("cannot create '" + path + "': " + std::strerror(errno));
  try {
    fill(fd);
  } catch (...) {
    ::close(fd);
    ::unlink(tmp.c_str());
    throw;
  }
  if (::close(fd) != 0 || ::rename(tmp.c_str(), path.c_str()) != 0) {
    int e = errno;
    ::unlink(tmp.c_str());
    throw Error("cannot write '" + path + "': " + std::strerror(e));
  }
}

OutputMap::OutputMap(const std::string& path, std::size_t size) : path_(path), tmp_(temp_name(path)), size_(size) {
  fd_ = ::open(tmp_.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd_ < 0) throw Error("cannot create '" + path + "': " + std::strerror(errno));
  if (size_ > 0) {
    if (::ftruncate(fd_, static_cast<off_t>(size_)) != 0) {
      int e = errno;
      ::close(fd_);
      ::unlink(tmp_.c_str());
      throw Error("cannot size '" + path + "': " + std::strerror(e));
    }
    void* p = ::mmap(nullptr, size_, PROT_READ | PROT_WRITE, MAP_SHARED, fd_, 0);
    if (p == MAP_FAILED) {
      int e = errno;
      ::close(fd_);
      ::unlink(tmp_.c_str());
      throw Error("cannot map '" + path + "' for writing: " + std::strerror(e));
    }
    data_ = static_cast<std::uint8_t*>(p);
  }
}

OutputMap::~OutputMap() {
  if (data_) ::munmap(data_, size_);
  if (fd_ >= 0) ::close(fd_);
  if (!committed_) ::unlink(tmp_.c_str());
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
