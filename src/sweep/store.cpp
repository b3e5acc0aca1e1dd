// qcast sweep: the SQLite results store. Each finished point is one transaction (points row + its
// layers), so a sweep killed at any moment loses at most the points in flight.
#include <sqlite3.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "qcast/error.hpp"
#include "qcast/sweep/sweep.hpp"

namespace qcast::sweep {

struct Store::Impl {
  sqlite3* db = nullptr;
  std::string path;

  void exec(const std::string& sql) {
    char* err = nullptr;
    if (sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
      const std::string m = err ? err : "unknown error";
      sqlite3_free(err);
      throw Error(path + ": " + m);
    }
  }
  struct Stmt {
    sqlite3_stmt* s = nullptr;
    Impl& o;
    Stmt(Impl& impl, const std::string& sql) : o(impl) {
      if (sqlite3_prepare_v2(o.db, sql.c_str(), -1, &s, nullptr) != SQLITE_OK) throw Error(o.path + ": " + sqlite3_errmsg(o.db));
    }
    ~Stmt() { sqlite3_finalize(s); }
    Stmt& text(int i, const std::string& v) {
      sqlite3_bind_text(s, i, v.c_str(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
      return *this;
    }
    Stmt& real(int i, double v) {
      sqlite3_bind_double(s, i, v);
      return *this;
    }
    Stmt& integer(int i, std::int64_t v) {
      sqlite3_bind_int64(s, i, v);
      return *this;
    }
    bool step() {
      const int rc = sqlite3_step(s);
      if (rc == SQLITE_ROW) return true;
      if (rc != SQLITE_DONE) throw Error(o.path + ": " + sqlite3_errmsg(o.db));
      return false;
    }
    std::string col_text(int i) const {
      const auto* t = sqlite3_column_text(s, i);
      return t ? std::string(reinterpret_cast<const char*>(t), static_cast<std::size_t>(sqlite3_column_bytes(s, i))) : std::string();
    }
  };
};

Store::Store(const std::string& path, const Spec& spec, bool resume) : impl_(std::make_unique<Impl>()) {
  impl_->path = path;
  std::error_code ec;
  const bool exists = std::filesystem::exists(path, ec);
  if (exists && !resume) throw Error(path + " exists: add --resume to continue that sweep, or give a new --db");
  if (sqlite3_open_v2(path.c_str(), &impl_->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr) != SQLITE_OK) {
    const std::string m = impl_->db ? sqlite3_errmsg(impl_->db) : "cannot open";
    sqlite3_close(impl_->db);
    impl_->db = nullptr;
    throw Error("cannot open results database '" + path + "': " + m);
  }
  sqlite3_busy_timeout(impl_->db, 10000);
  try {
    impl_->exec("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;");
    impl_->exec(
        "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
        "CREATE TABLE IF NOT EXISTS points (id INTEGER PRIMARY KEY, key TEXT UNIQUE NOT NULL, model TEXT, weights TEXT, acts TEXT,"
        " kv TEXT, method TEXT, arch TEXT, status TEXT NOT NULL, error TEXT, metric TEXT, value REAL, baseline REAL, delta REAL,"
        " ci95 REAL, samples INTEGER, bits_per_weight REAL, model_bytes REAL, energy_pj REAL, cycles INTEGER, computes INTEGER,"
        " edp REAL, command TEXT, result TEXT NOT NULL, quant_s REAL, eval_s REAL, cost_s REAL, total_s REAL);"
        "CREATE TABLE IF NOT EXISTS layers (point INTEGER NOT NULL, layer INTEGER NOT NULL, name TEXT, shape TEXT, weights TEXT,"
        " acts TEXT, computes INTEGER, cycles INTEGER, energy_pj REAL, levels TEXT, PRIMARY KEY (point, layer));");
    Impl::Stmt q(*impl_, "SELECT value FROM meta WHERE key = 'spec'");
    if (q.step()) {
      if (q.col_text(0) != spec.text)
        throw Error(path + " holds the results of another spec (resume needs the same spec file contents)");
    } else {
      Impl::Stmt ins(*impl_, "INSERT INTO meta (key, value) VALUES ('spec', ?1), ('qcast_version', ?2), ('schema', '1')");
      ins.text(1, spec.text).text(2, version());
      ins.step();
    }
  } catch (...) {
    sqlite3_close(impl_->db);
    impl_->db = nullptr;
    throw;
  }
}

Store::~Store() {
  if (impl_ && impl_->db) sqlite3_close(impl_->db);
}

std::map<std::string, PointResult> Store::finished() const {
  std::map<std::string, PointResult> m;
  Impl::Stmt q(*impl_, "SELECT key, result, quant_s, eval_s, cost_s, total_s FROM points");
  while (q.step()) {
    PointResult r = PointResult::from_json(q.col_text(1));
    r.quant_s = sqlite3_column_double(q.s, 2);
    r.eval_s = sqlite3_column_double(q.s, 3);
    r.cost_s = sqlite3_column_double(q.s, 4);
    r.total_s = sqlite3_column_double(q.s, 5);
    m.emplace(q.col_text(0), std::move(r));
  }
  return m;
}

void Store::put(const Spec& spec, const Point& p, const PointResult& r) {
  const FormatSpec& f = spec.formats[static_cast<std::size_t>(p.format)];
  impl_->exec("BEGIN IMMEDIATE");
  try {
    Impl::Stmt d(*impl_, "DELETE FROM layers WHERE point = ?1");
    d.integer(1, p.index).step();
    Impl::Stmt s(*impl_,
                 "INSERT OR REPLACE INTO points (id, key, model, weights, acts, kv, method, arch, status, error, metric, value, baseline,"
                 " delta, ci95, samples, bits_per_weight, model_bytes, energy_pj, cycles, computes, edp, command, result, quant_s, eval_s,"
                 " cost_s, total_s) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20,"
                 " ?21, ?22, ?23, ?24, ?25, ?26, ?27, ?28)");
    s.integer(1, p.index).text(2, p.key(spec)).text(3, spec.models[static_cast<std::size_t>(p.model)].name);
    s.text(4, fmt_name(f.weights)).text(5, fmt_name(f.acts)).text(6, fmt_name(f.kv)).text(7, p.method);
    s.text(8, spec.archs[static_cast<std::size_t>(p.arch)].name).text(9, r.ok ? "ok" : "error");
    if (r.ok) sqlite3_bind_null(s.s, 10);
    else s.text(10, r.error);
    if (r.ok) {
      s.text(11, r.metric).real(12, r.value).real(13, r.baseline).real(14, r.delta).real(15, r.ci95).integer(16, r.samples);
      s.real(17, r.bits_per_weight).real(18, r.model_bytes).real(19, r.energy_pj).integer(20, r.cycles).integer(21, r.computes);
      s.real(22, r.edp);
    } else
      for (int i = 11; i <= 22; ++i) sqlite3_bind_null(s.s, i);
    s.text(23, r.command).text(24, r.to_json());
    s.real(25, r.quant_s).real(26, r.eval_s).real(27, r.cost_s).real(28, r.total_s);
    s.step();
    Impl::Stmt l(*impl_,
                 "INSERT INTO layers (point, layer, name, shape, weights, acts, computes, cycles, energy_pj, levels) VALUES"
                 " (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)");
    for (std::size_t k = 0; k < r.layers.size(); ++k) {
      const LayerCost& c = r.layers[k];
      nlohmann::ordered_json lj = nlohmann::ordered_json::object();
      for (const auto& e : c.levels) lj[e.name] = e.energy_pj;
      const std::string lv = lj.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
      sqlite3_reset(l.s);
      l.integer(1, p.index).integer(2, static_cast<std::int64_t>(k)).text(3, c.name).text(4, c.shape).text(5, c.weights).text(6, c.acts);
      l.integer(7, c.computes).integer(8, c.cycles).real(9, c.energy_pj).text(10, lv);
      l.step();
    }
    impl_->exec("COMMIT");
  } catch (...) {
    sqlite3_exec(impl_->db, "ROLLBACK", nullptr, nullptr, nullptr);
    throw;
  }
}

}  // namespace qcast::sweep
