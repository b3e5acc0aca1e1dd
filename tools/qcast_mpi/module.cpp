// MPI transport for `qcast sweep` as a module (libqcast_mpi.so), loaded only when the sweep runs under
// mpirun / srun (tools/qcast/sweep_mpi.cpp): the qcast executable itself never links libmpi, so no other
// command pays for loading it, and a build without MPI still builds everything else.
// A small C interface: init, rank / size, blocking send / receive of byte messages with a tag, abort.
// The C API only (Open MPI and MPICH otherwise pull in their C++ bindings, which need libmpi_cxx).
#define OMPI_SKIP_MPICXX 1
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>

#include <cstdlib>
#include <cstring>

#define QCAST_MPI_API extern "C" __attribute__((visibility("default")))

QCAST_MPI_API int qcast_mpi_init(int* rank, int* size) {
  int inited = 0;
  MPI_Initialized(&inited);
  if (!inited && MPI_Init(nullptr, nullptr) != MPI_SUCCESS) return 1;
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  MPI_Comm_rank(MPI_COMM_WORLD, rank);
  MPI_Comm_size(MPI_COMM_WORLD, size);
  return 0;
}

QCAST_MPI_API int qcast_mpi_send(int dest, int tag, const char* data, long n) {
  return MPI_Send(data, static_cast<int>(n), MPI_CHAR, dest, tag, MPI_COMM_WORLD) == MPI_SUCCESS ? 0 : 1;
}

/// Receives the next message from any rank (src < 0) or from `*src`; returns a malloc'ed buffer (free with
/// qcast_mpi_free), its size, source and tag.
QCAST_MPI_API int qcast_mpi_recv(int* src, int* tag, char** data, long* n) {
  MPI_Status st;
  if (MPI_Probe(*src < 0 ? MPI_ANY_SOURCE : *src, MPI_ANY_TAG, MPI_COMM_WORLD, &st) != MPI_SUCCESS) return 1;
  int count = 0;
  MPI_Get_count(&st, MPI_CHAR, &count);
  char* buf = static_cast<char*>(std::malloc(static_cast<std::size_t>(count) + 1));
  if (!buf) return 1;
  if (MPI_Recv(buf, count, MPI_CHAR, st.MPI_SOURCE, st.MPI_TAG, MPI_COMM_WORLD, MPI_STATUS_IGNORE) != MPI_SUCCESS) {
    std::free(buf);
    return 1;
  }
  buf[count] = '\0';
  *src = st.MPI_SOURCE;
  *tag = st.MPI_TAG;
  *data = buf;
  *n = count;
  return 0;
}

QCAST_MPI_API void qcast_mpi_free(char* p) { std::free(p); }

QCAST_MPI_API void qcast_mpi_finalize() { MPI_Finalize(); }

QCAST_MPI_API void qcast_mpi_abort(int code) { MPI_Abort(MPI_COMM_WORLD, code); }
