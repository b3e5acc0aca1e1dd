// qcast sweep SPEC.yaml [--db results.sqlite [--resume]] [--report report.html] [--json] [--threads N]
// Formats x methods x accelerators for each model: metric against the fp32 baseline, bits, bytes, energy,
// cycles and EDP per point, the Pareto fronts marked (qcast::sweep, docs/sweep.md).
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <functional>
#include <memory>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>

#include "command.hpp"
#include "sweep_mpi.hpp"
#include "qcast/error.hpp"
#include "qcast/file.hpp"
#include "qcast/sweep/sweep.hpp"

namespace qcast::cli {
namespace {

struct Args {
  std::string spec, db, report;
  bool json = false, resume = false, quiet = false;
  int threads = 1;
};

using Clock = std::chrono::steady_clock;

/// Where the report's plotting libraries are: $QCAST_REPORT_JS, else tools/report/node_modules of the
/// source tree the executable was built in (build/../tools/report, filled by tools/report/fetch.sh).
std::string report_js_dir() {
  if (const char* e = std::getenv("QCAST_REPORT_JS"); e && *e) return e;
  char buf[4096];
  const ssize_t n = ::readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  std::string dir = n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : std::string("./qcast");
  dir = dir.substr(0, dir.rfind('/'));
  return dir + "/../tools/report/node_modules";
}

nlohmann::ordered_json point_json(const sweep::Spec& s, const sweep::Point& p, const sweep::PointResult& r) {
  const auto& f = s.formats[static_cast<std::size_t>(p.format)];
  nlohmann::ordered_json j;
  j["model"] = s.models[static_cast<std::size_t>(p.model)].name;
  j["weights"] = sweep::fmt_name(f.weights);
  j["acts"] = sweep::fmt_name(f.acts);
  j["kv"] = sweep::fmt_name(f.kv);
  j["method"] = p.method;
  j["arch"] = s.archs[static_cast<std::size_t>(p.arch)].name;
  j["status"] = r.ok ? "ok" : "error";
  if (!r.ok) {
    j["error"] = r.error;
    return j;
  }
  j["metric"] = {{"name", r.metric}, {"value", r.value}, {"delta", r.delta}, {"ci95", r.ci95}, {"baseline", r.baseline}, {"samples", r.samples}};
  j["bits_per_weight"] = r.bits_per_weight;
  j["model_bytes"] = r.model_bytes;
  j["energy_pj"] = r.energy_pj;
  j["cycles"] = r.cycles;
  j["edp"] = r.edp;
  nlohmann::ordered_json lv = nlohmann::ordered_json::object();
  for (const auto& l : r.levels) lv[l.name] = l.energy_pj;
  j["levels_pj"] = lv;
  j["seconds"] = {{"quantize", r.quant_s}, {"eval", r.eval_s}, {"cost", r.cost_s}, {"total", r.total_s}};
  j["command"] = r.command;
  return j;
}

// MPI: rank 0 owns the database and hands out points one at a time (a dynamic queue: a rank asks for the
// next point when it has finished one); ranks 1..N-1 run them. Message tags:
enum Tag { kReady = 1, kWork = 2, kStop = 3, kResult = 4 };

/// A worker rank: asks for points until told to stop, sends each result ("index quant eval cost total
/// searches hits\n" + the result's JSON).
void work(MpiTransport& mpi, const sweep::Spec& spec, const std::vector<sweep::Point>& points, int threads) {
  sweep::Runner runner(spec, threads);
  mpi.send(0, kReady, "");
  for (;;) {
    int src = 0, tag = 0;
    const std::string msg = mpi.recv(src, tag);
    if (tag == kStop) return;
    if (tag != kWork) throw Error("MPI: unexpected message tag " + std::to_string(tag) + " from rank " + std::to_string(src));
    const int i = std::stoi(msg);
    if (i < 0 || i >= static_cast<int>(points.size())) throw Error("MPI: point index " + msg + " out of range");
    const sweep::PointResult r = runner.run(points[static_cast<std::size_t>(i)]);
    char head[256];
    std::snprintf(head, sizeof head, "%d %.17g %.17g %.17g %.17g %lld %lld\n", i, r.quant_s, r.eval_s, r.cost_s, r.total_s,
                  static_cast<long long>(runner.mapper_runs()), static_cast<long long>(runner.mapper_hits()));
    mpi.send(0, kResult, head + r.to_json());
  }
}

void coordinate(MpiTransport& mpi, const std::vector<sweep::Point>& points, const std::vector<int>& queue,
                const std::function<void(const sweep::Point&, sweep::PointResult)>& finish, std::int64_t& searches, std::int64_t& hits) {
  std::size_t next = 0;
  int active = mpi.size() - 1;
  std::vector<std::int64_t> s(static_cast<std::size_t>(mpi.size()), 0), h(s);
  while (active > 0) {
    int src = -1, tag = 0;
    const std::string msg = mpi.recv(src, tag);
    if (tag == kResult) {
      const auto nl = msg.find('\n');
      if (nl == std::string::npos) throw Error("MPI: malformed result from rank " + std::to_string(src));
      int i = 0;
      double q = 0, e = 0, c = 0, t = 0;
      long long rs = 0, rh = 0;
      if (std::sscanf(msg.substr(0, nl).c_str(), "%d %lf %lf %lf %lf %lld %lld", &i, &q, &e, &c, &t, &rs, &rh) != 7 || i < 0 ||
          i >= static_cast<int>(points.size()))
        throw Error("MPI: malformed result from rank " + std::to_string(src));
      sweep::PointResult r = sweep::PointResult::from_json(msg.substr(nl + 1));
      r.quant_s = q;
      r.eval_s = e;
      r.cost_s = c;
      r.total_s = t;
      s[static_cast<std::size_t>(src)] = rs;
      h[static_cast<std::size_t>(src)] = rh;
      finish(points[static_cast<std::size_t>(i)], std::move(r));
    } else if (tag != kReady)
      throw Error("MPI: unexpected message tag " + std::to_string(tag) + " from rank " + std::to_string(src));
    if (next < queue.size()) mpi.send(src, kWork, std::to_string(queue[next++]));
    else {
      mpi.send(src, kStop, "");
      --active;
    }
  }
  for (std::size_t k = 0; k < s.size(); ++k) {
    searches += s[k];
    hits += h[k];
  }
}

void run(const Args& a, MpiTransport* mpi) {
  const sweep::Spec spec = sweep::Spec::from_file(a.spec);
  const std::vector<sweep::Point> points = sweep::expand(spec);
  if (a.resume && a.db.empty()) throw Error("--resume continues the sweep stored in --db FILE; give --db");
  if (!a.report.empty()) check_output_path(a.report, "--report");
  std::optional<sweep::Store> store;
  if (!a.db.empty()) {
    if (!a.resume) check_output_path(a.db, "--db");
    store.emplace(a.db, spec, a.resume);
  }
  std::vector<sweep::PointResult> results(points.size());
  std::vector<bool> have(points.size(), false);
  if (store) {
    const auto done = store->finished();
    for (const auto& p : points) {
      auto it = done.find(p.key(spec));
      if (it != done.end()) {
        results[static_cast<std::size_t>(p.index)] = it->second;
        have[static_cast<std::size_t>(p.index)] = true;
      }
    }
  }
  std::size_t todo = 0;
  for (bool h : have) todo += h ? 0 : 1;
  if (!a.quiet)
    std::fprintf(stderr, "qcast sweep: %zu points (%zu models x %zu formats x methods x %zu archs), %zu to run\n", points.size(),
                 spec.models.size(), spec.formats.size(), spec.archs.size(), todo);
  const auto t0 = Clock::now();
  std::size_t done = 0;
  auto finish = [&](const sweep::Point& p, sweep::PointResult r) {
    if (store) store->put(spec, p, r);
    ++done;
    if (!a.quiet) {
      const double el = std::chrono::duration<double>(Clock::now() - t0).count();
      const double eta = el / static_cast<double>(done) * static_cast<double>(todo - done);
      if (r.ok)
        std::fprintf(stderr, "[%zu/%zu] %s: %s %.6g (%+.4g +- %.2g), %.4g uJ, %.3f s; elapsed %.0f s, ETA %.0f s\n", done, todo,
                     printable(p.key(spec)).c_str(), r.metric.c_str(), r.value, r.delta, r.ci95, r.energy_pj / 1e6, r.total_s, el, eta);
      else
        std::fprintf(stderr, "[%zu/%zu] %s: failed: %s; elapsed %.0f s, ETA %.0f s\n", done, todo, printable(p.key(spec)).c_str(),
                     printable(r.error).c_str(), el, eta);
    }
    results[static_cast<std::size_t>(p.index)] = std::move(r);
  };
  std::vector<int> queue;
  for (const auto& p : points)
    if (!have[static_cast<std::size_t>(p.index)]) queue.push_back(p.index);
  std::int64_t searches = 0, hits = 0;
  if (mpi) coordinate(*mpi, points, queue, finish, searches, hits);
  else {
    sweep::Runner runner(spec, a.threads);
    for (int i : queue) finish(points[static_cast<std::size_t>(i)], runner.run(points[static_cast<std::size_t>(i)]));
    searches = runner.mapper_runs();
    hits = runner.mapper_hits();
  }
  const std::vector<int> front = sweep::pareto(spec, points, results);
  if (!a.report.empty()) {
    const std::string html = sweep::report_html(spec, points, results, report_js_dir());
    write_file_atomic(a.report, [&](int fd) { write_all(fd, html.data(), html.size(), a.report); });
  }
  if (a.json) {
    nlohmann::ordered_json j;
    j["schema"] = 1;
    nlohmann::ordered_json ps = nlohmann::ordered_json::array();
    for (const auto& p : points) ps.push_back(point_json(spec, p, results[static_cast<std::size_t>(p.index)]));
    j["points"] = ps;
    j["pareto"] = front;
    j["mapper"] = {{"searches", searches}, {"cache_hits", hits}};
    std::cout << json_text(j, 2) << "\n";
    return;
  }
  std::vector<bool> on(points.size(), false);
  for (int i : front) on[static_cast<std::size_t>(i)] = true;
  std::printf("%-3s %-14s %-16s %-8s %-6s %-12s %-12s %10s %10s %7s %10s %12s %12s\n", "", "model", "weights", "acts", "kv", "method",
              "arch", "metric", "delta", "ci95", "bits/w", "energy uJ", "cycles");
  for (const auto& p : points) {
    const auto& r = results[static_cast<std::size_t>(p.index)];
    const auto& f = spec.formats[static_cast<std::size_t>(p.format)];
    std::printf("%-3s %-14s %-16s %-8s %-6s %-12s %-12s ", on[static_cast<std::size_t>(p.index)] ? "*" : "",
                printable(spec.models[static_cast<std::size_t>(p.model)].name).c_str(), printable(sweep::fmt_name(f.weights)).c_str(),
                printable(sweep::fmt_name(f.acts)).c_str(), printable(sweep::fmt_name(f.kv)).c_str(), printable(p.method).c_str(),
                printable(spec.archs[static_cast<std::size_t>(p.arch)].name).c_str());
    if (r.ok)
      std::printf("%10.5g %+10.4g %7.2g %10.3f %12.4f %12lld\n", r.value, r.delta, r.ci95, r.bits_per_weight, r.energy_pj / 1e6,
                  static_cast<long long>(r.cycles));
    else
      std::printf("failed: %s\n", printable(r.error).c_str());
  }
  std::printf("* = on the Pareto front of metric vs energy (per model and architecture); mapper: %lld searches, %lld cache hits\n",
              static_cast<long long>(searches), static_cast<long long>(hits));
}

Registrar reg("sweep", [](CLI::App& root) {
  auto a = std::make_shared<Args>();
  auto* sub = root.add_subcommand("sweep", "formats x methods x accelerators: accuracy against energy, bytes and cycles, Pareto fronts (docs/sweep.md)");
  sub->add_option("spec", a->spec, "sweep spec YAML: models, formats, methods, calib, archs, objective, mapper (docs/sweep.md)")->required();
  sub->add_option("--db", a->db, "SQLite results database (tables meta, points, layers); each point is committed as it finishes");
  sub->add_option("--report", a->report, "write a self-contained HTML report (Pareto fronts, per-layer energy, error heatmap, commands)");
  sub->add_flag("--resume", a->resume, "continue the sweep in --db: finished points are skipped");
  sub->add_flag("--json", a->json, "print {schema, points, pareto} as JSON");
  sub->add_flag("--quiet", a->quiet, "no per-point progress lines on stderr");
  add_threads_flag(sub, a->threads);
  sub->callback([a] {
    std::unique_ptr<MpiTransport> mpi = MpiTransport::open_if_launched();
    if (!mpi || mpi->size() == 1) return run(*a, nullptr);
    try {
      if (mpi->rank() == 0) run(*a, mpi.get());
      else {
        const sweep::Spec spec = sweep::Spec::from_file(a->spec);
        work(*mpi, spec, sweep::expand(spec), a->threads);
      }
    } catch (const std::exception& e) {
      // One rank's failure (a database that cannot be written, a spec that cannot be read) ends them all.
      std::cerr << "qcast: error: " << printable(e.what()) << " (rank " << mpi->rank() << ")\n";
      mpi->abort(2);
    }
  });
});

}  // namespace
}  // namespace qcast::cli
