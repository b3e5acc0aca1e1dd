// Issue 19: an output is only written when the command succeeds. Every output path and input is checked
// before the first byte is written; a signal removes the temporary file of an output being written.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <thread>

#include "onnx_builder.hpp"
#include "qcast/io.hpp"
#include "test_support.hpp"

using qcast::test::run_cli;
namespace fs = std::filesystem;

namespace {

void write_calib(const qcast::test::TempDir& d) {
  qcast::Tensor x = qcast::Tensor::zeros_f32({8, 4});
  for (int k = 0; k < 32; ++k) x.mutable_f32()[k] = static_cast<float>(k % 7) - 3.0f;
  qcast::write_npy(d.file("x.npy"), x);
  std::vector<std::int64_t> labels = {0, 1, 2, 0, 1, 2, 0, 1};
  qcast::Tensor y;
  y.dtype = qcast::DType::I64;
  y.shape = {8};
  y.data = labels.data();
  qcast::write_npy(d.file("y.npy"), y);
  qcast::test::onnx::save(d.file("m.onnx"), qcast::test::onnx::linear_classifier());
}

std::vector<std::string> names_in(const std::string& dir) {
  std::vector<std::string> r;
  for (auto& e : fs::directory_iterator(dir)) r.push_back(e.path().filename().string());
  return r;
}

}  // namespace

TEST(HardeningOutputs, QuantizeChecksReportAndEvalBeforeWriting) {
  qcast::test::TempDir d;
  write_calib(d);
  const std::string base = "quantize " + d.file("m.onnx") + " --weights int8@fp32/ch0 --calib npy:" + d.file("x.npy") + "," + d.file("y.npy") +
                           " --quiet --out " + d.file("q.safetensors");
  auto r = run_cli(base + " --report /nonexistent/r.json");
  EXPECT_EQ(r.rc, 2) << r.err;
  EXPECT_NE(r.err.find("--report"), std::string::npos) << r.err;
  EXPECT_FALSE(qcast::test::exists(d.file("q.safetensors")));
  r = run_cli(base + " --eval npy:" + d.file("missing.npy") + "," + d.file("y.npy"));
  EXPECT_EQ(r.rc, 2) << r.err;
  EXPECT_NE(r.err.find("missing.npy"), std::string::npos) << r.err;
  EXPECT_FALSE(qcast::test::exists(d.file("q.safetensors")));
  // An existing output is not replaced by a failing run either.
  { std::ofstream(d.file("q.safetensors")) << "old"; }
  r = run_cli(base + " --report " + d.file("r.json") + " --eval npy:" + d.file("x.npy") + "," + d.file("missing.npy"));
  EXPECT_EQ(r.rc, 2) << r.err;
  EXPECT_EQ(fs::file_size(d.file("q.safetensors")), 3u);
  // Everything valid: the model, the report with the evaluation, and nothing else in the directory.
  r = run_cli(base + " --report " + d.file("r.json") + " --eval npy:" + d.file("x.npy") + "," + d.file("y.npy"));
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_GT(fs::file_size(d.file("q.safetensors")), 3u);
  EXPECT_TRUE(qcast::test::exists(d.file("r.json")));
  for (auto& n : names_in(d.path())) EXPECT_EQ(n.find(".tmp."), std::string::npos) << n;
  r = run_cli("eval " + d.file("q.safetensors") + " --data npy:" + d.file("x.npy") + "," + d.file("y.npy") + " --json");
  EXPECT_EQ(r.rc, 0) << r.err;
}

TEST(HardeningOutputs, SignalsRemoveTemporaryFiles) {
  // A cast of a large file, interrupted while it writes OUT.tmp.PID.N: the temporary must go and the
  // process must still end by the signal.
  qcast::test::TempDir d;
  qcast::Tensor x = qcast::Tensor::zeros_f32({64, 1 << 20});  // 256 MiB
  qcast::write_npy(d.file("in.npy"), x);
  for (int sig : {SIGTERM, SIGINT, SIGHUP}) {
    const pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      ::signal(SIGINT, SIG_DFL);  // a test runner's ignored SIGINT must not be inherited
      ::execl(QCAST_CLI_PATH, QCAST_CLI_PATH, "cast", d.file("in.npy").c_str(), d.file("out.npy").c_str(), "-f", "mxfp4", "--round",
              "stochastic", "--threads", "1", static_cast<char*>(nullptr));
      _exit(127);
    }
    bool saw_tmp = false;
    for (int k = 0; k < 4000 && !saw_tmp; ++k) {
      for (auto& n : names_in(d.path())) saw_tmp |= n.find("out.npy.tmp.") == 0;
      if (!saw_tmp) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    ::kill(pid, sig);
    int st = 0;
    ::waitpid(pid, &st, 0);
    if (!saw_tmp || !WIFSIGNALED(st)) {
      // It finished before it could be interrupted (a fast machine): nothing to check this round.
      fs::remove(d.file("out.npy"));
      continue;
    }
    EXPECT_EQ(WTERMSIG(st), sig);
    for (auto& n : names_in(d.path())) EXPECT_EQ(n.find("out.npy"), std::string::npos) << "signal " << sig << " left " << n;
  }
}
