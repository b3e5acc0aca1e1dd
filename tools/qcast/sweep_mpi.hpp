// MPI transport of `qcast sweep` (rank 0 owns the database and hands out points; the others run them).
// The MPI library is in a module (tools/qcast_mpi) loaded only when the process was started by an MPI
// launcher (mpirun, mpiexec, srun): plain `qcast sweep` and every other command never load libmpi.
#pragma once
#include <memory>
#include <string>

namespace qcast::cli {

class MpiTransport {
 public:
  /// The transport when this process was started by an MPI launcher, else nullptr. qcast::Error when it
  /// was but this qcast has no MPI module (built without MPI) or MPI cannot start.
  static std::unique_ptr<MpiTransport> open_if_launched();
  ~MpiTransport();
  int rank() const { return rank_; }
  int size() const { return size_; }
  void send(int dest, int tag, const std::string& data);
  /// Blocks for the next message from `src` (-1 = any rank); sets src and tag.
  std::string recv(int& src, int& tag);
  [[noreturn]] void abort(int code);

 private:
  struct Api;
  std::unique_ptr<Api> api_;
  int rank_ = 0, size_ = 1;
};

}  // namespace qcast::cli
