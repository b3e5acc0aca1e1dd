// MPI transport of `qcast sweep`: see sweep_mpi.hpp.
#include "sweep_mpi.hpp"

#include <dlfcn.h>

#include <cstdlib>

#include "module_loader.hpp"

#include "qcast/error.hpp"

namespace qcast::cli {

namespace {
bool launched_by_mpi() {
  for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "PMI_RANK", "MPI_LOCALNRANKS"})
    if (std::getenv(v)) return true;
  return false;
}

}  // namespace

struct MpiTransport::Api {
  int (*init)(int*, int*) = nullptr;
  int (*send)(int, int, const char*, long) = nullptr;
  int (*recv)(int*, int*, char**, long*) = nullptr;
  void (*free)(char*) = nullptr;
  void (*finalize)() = nullptr;
  void (*abort)(int) = nullptr;
};

std::unique_ptr<MpiTransport> MpiTransport::open_if_launched() {
  if (!launched_by_mpi()) return nullptr;
#ifndef QCAST_HAVE_MPI_MODULE
  throw Error("qcast sweep was started by an MPI launcher, but this qcast was built without MPI (install libopenmpi-dev and rebuild); "
              "run `qcast sweep` without mpirun to sweep in one process");
#else
  auto t = std::unique_ptr<MpiTransport>(new MpiTransport());
  t->api_ = std::make_unique<Api>();
  // RTLD_GLOBAL: Open MPI loads its own components (dlopen) that expect libmpi's symbols to be global.
  void* h = open_cli_module(QCAST_MPI_MODULE_NAME, QCAST_MPI_MODULE_RELATIVE, QCAST_MPI_MODULE_INSTALLED, RTLD_NOW | RTLD_GLOBAL,
                            "the MPI module");
  auto sym = [&](const char* name) { return module_symbol(h, name, "the MPI module"); };
  Api& a = *t->api_;
  a.init = reinterpret_cast<int (*)(int*, int*)>(sym("qcast_mpi_init"));
  a.send = reinterpret_cast<int (*)(int, int, const char*, long)>(sym("qcast_mpi_send"));
  a.recv = reinterpret_cast<int (*)(int*, int*, char**, long*)>(sym("qcast_mpi_recv"));
  a.free = reinterpret_cast<void (*)(char*)>(sym("qcast_mpi_free"));
  a.finalize = reinterpret_cast<void (*)()>(sym("qcast_mpi_finalize"));
  a.abort = reinterpret_cast<void (*)(int)>(sym("qcast_mpi_abort"));
  if (a.init(&t->rank_, &t->size_) != 0) throw Error("MPI_Init failed");
  return t;
#endif
}

MpiTransport::~MpiTransport() {
  if (api_ && api_->finalize) api_->finalize();
}

void MpiTransport::send(int dest, int tag, const std::string& data) {
  if (api_->send(dest, tag, data.data(), static_cast<long>(data.size())) != 0)
    throw Error("MPI: sending to rank " + std::to_string(dest) + " failed");
}

std::string MpiTransport::recv(int& src, int& tag) {
  char* buf = nullptr;
  long n = 0;
  if (api_->recv(&src, &tag, &buf, &n) != 0) throw Error("MPI: receiving failed");
  std::string s(buf, static_cast<std::size_t>(n));
  api_->free(buf);
  return s;
}

void MpiTransport::abort(int code) {
  if (api_ && api_->abort) api_->abort(code);
  std::_Exit(code);
}

}  // namespace qcast::cli
