// File helpers: read-only memory maps and atomic writes (temp file + rename, never half-written output).
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

namespace qcast {

/// A read-only mapping of a whole file. Throws qcast::Error naming the path when it cannot be opened.
class MappedFile {
 public:
  explicit MappedFile(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  const std::uint8_t* data() const { return data_; }
  std::size_t size() const { return size_; }
  const std::string& path() const { return path_; }
  /// Copies bytes [offset, offset + n) of the file to dst with pread (throws qcast::Error if the file
  /// is shorter now). For bulk streaming reads: on VMs, touching fresh pages of the mapping costs several
  /// microseconds per 4 KiB page, about twice a pread of the same bytes. Safe from several threads.
  void read_at(void* dst, std::size_t n, std::uint64_t offset) const;

 private:
  std::string path_;
  const std::uint8_t* data_ = nullptr;
  std::size_t size_ = 0;
  bool mapped_ = false;
  int fd_ = -1;
};

/// Writes `path` atomically: `fill(fd)` writes the contents to a temporary file beside `path`
/// (a POSIX file descriptor), which is renamed over `path` only if `fill` returns normally.
/// On any exception the temporary file is removed and the exception propagates.
void write_file_atomic(const std::string& path, const std::function<void(int fd)>& fill);

/// Writes all `n` bytes to `fd` or throws qcast::Error mentioning `what`.
void write_all(int fd, const void* data, std::size_t n, const std::string& what);
/// pwrite of all n bytes at file offset `offset` (the file position is not moved; safe from several
/// threads for disjoint ranges).
void pwrite_all(int fd, const void* data, std::size_t n, std::uint64_t offset, const std::string& what);

/// Temporary files and signals. Every temporary output (write_file_atomic, OutputMap, TempFileGuard) is
/// registered while it exists; after install_temp_file_signal_handlers() (the CLI calls it first thing),
/// SIGINT / SIGTERM / SIGHUP remove the registered files (unlink only: async-signal-safe) and then end the
/// process by the signal's default action, so an interrupted command leaves neither a half-written output
/// nor a temporary behind.
void install_temp_file_signal_handlers();
/// Registers `path` for removal on those signals; returns a slot for unregister_temp_file (-1 when all
/// slots are taken: the file is then only removed on normal paths).
int register_temp_file(const std::string& path);
void unregister_temp_file(int slot);
/// Unlinks every registered file (async-signal-safe; what the handler does).
void remove_registered_temp_files() noexcept;

/// Owns a temporary file path: registered for the signal handler, removed when the guard dies unless
/// release() was called (after the file was renamed into place, or when it was never created by us).
class TempFileGuard {
 public:
  explicit TempFileGuard(std::string path);
  ~TempFileGuard();
  TempFileGuard(const TempFileGuard&) = delete;
  TempFileGuard& operator=(const TempFileGuard&) = delete;
  const std::string& path() const { return path_; }
  void release();

 private:
  std::string path_;
  int slot_ = -1;
  bool released_ = false;
};

/// qcast::Error (naming `what`, e.g. "--report", and the path) unless `path` could be created: its
/// directory exists and is writable and `path` is not a directory. For checking every output of a command
/// before the command writes anything.
void check_output_path(const std::string& path, const std::string& what);

/// A writable memory map of a new file of exactly `size` bytes, created as a temporary beside `path`
/// and renamed into place by commit(). Destroying it without commit() removes the temporary.
class OutputMap {
 public:
  OutputMap(const std::string& path, std::size_t size);
  ~OutputMap();
  OutputMap(const OutputMap&) = delete;
  OutputMap& operator=(const OutputMap&) = delete;
  std::uint8_t* data() { return data_; }
  std::size_t size() const { return size_; }
  void commit();

 private:
  std::string path_, tmp_;
  std::uint8_t* data_ = nullptr;
  std::size_t size_ = 0;
  int fd_ = -1;
  int slot_ = -1;
  bool committed_ = false;
};

}  // namespace qcast
