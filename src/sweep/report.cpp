// qcast sweep: the self-contained HTML report (Vega-Lite charts, the plotting libraries inlined).
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "qcast/error.hpp"
#include "qcast/sweep/sweep.hpp"

namespace qcast::sweep {
namespace {

using J = nlohmann::ordered_json;

std::string read_js(const std::string& dir, const std::string& rel) {
  const std::string path = dir + "/" + rel;
  std::ifstream f(path, std::ios::binary);
  if (!f)
    throw Error("--report: cannot read " + path + " (the report inlines Vega from npm: run tools/report/fetch.sh, or point "
                "QCAST_REPORT_JS at a node_modules folder with vega, vega-lite and vega-embed)");
  std::ostringstream ss;
  ss << f.rdbuf();
  std::string s = ss.str();
  // Inside <script>, "</script" would end the element: the JS keeps its meaning as "<\/script".
  for (std::size_t k = 0; (k = s.find("</script", k)) != std::string::npos; k += 2) s.replace(k, 2, "<\\/");
  return s;
}

std::string html_escape(const std::string& s) {
  std::string r;
  for (char c : s) {
    switch (c) {
      case '&': r += "&amp;"; break;
      case '<': r += "&lt;"; break;
      case '>': r += "&gt;"; break;
      case '"': r += "&quot;"; break;
      default: r += c;
    }
  }
  return r;
}

/// Points of one (model, arch) group not dominated in (metric, x).
std::vector<bool> front_by(const std::vector<Point>& pts, const std::vector<PointResult>& res, double (*x)(const PointResult&)) {
  std::vector<bool> on(pts.size(), false);
  for (std::size_t i = 0; i < pts.size(); ++i) {
    if (!res[i].ok) continue;
    const bool higher = res[i].metric == "accuracy";
    bool dom = false;
    for (std::size_t j = 0; j < pts.size() && !dom; ++j) {
      if (j == i || !res[j].ok || pts[j].model != pts[i].model || pts[j].arch != pts[i].arch) continue;
      const bool ge = higher ? res[j].value >= res[i].value : res[j].value <= res[i].value;
      const bool gt = higher ? res[j].value > res[i].value : res[j].value < res[i].value;
      dom = ge && x(res[j]) <= x(res[i]) && (gt || x(res[j]) < x(res[i]));
    }
    on[i] = !dom;
  }
  return on;
}

double x_energy(const PointResult& r) { return r.energy_pj; }
double x_bytes(const PointResult& r) { return r.model_bytes; }
double x_cycles(const PointResult& r) { return static_cast<double>(r.cycles); }

J num(double v) { return std::isfinite(v) ? J(v) : J(nullptr); }

}  // namespace

std::string report_html(const Spec& spec, const std::vector<Point>& points, const std::vector<PointResult>& results,
                        const std::string& js_dir) {
  const std::string vega = read_js(js_dir, "vega/build/vega.min.js");
  const std::string vl = read_js(js_dir, "vega-lite/build/vega-lite.min.js");
  const std::string embed = read_js(js_dir, "vega-embed/build/vega-embed.min.js");
  const auto fe = front_by(points, results, x_energy), fb = front_by(points, results, x_bytes), fc = front_by(points, results, x_cycles);
  J rows = J::array(), layers = J::array(), heat = J::array();
  for (std::size_t i = 0; i < points.size(); ++i) {
    const Point& p = points[i];
    const PointResult& r = results[i];
    if (!r.ok) continue;
    const FormatSpec& f = spec.formats[static_cast<std::size_t>(p.format)];
    std::string label = fmt_name(f.weights);
    if (!f.acts.empty()) label += " / a:" + f.acts;
    if (!f.kv.empty()) label += " / kv:" + f.kv;
    const std::string full = label + " (" + p.method + ")";
    rows.push_back({{"i", i}, {"model", spec.models[static_cast<std::size_t>(p.model)].name},
                    {"arch", spec.archs[static_cast<std::size_t>(p.arch)].name}, {"format", label}, {"method", p.method},
                    {"point", full}, {"metric", r.metric}, {"value", num(r.value)}, {"delta", num(r.delta)}, {"ci95", num(r.ci95)},
                    {"energy_uJ", num(r.energy_pj / 1e6)}, {"model_kB", num(r.model_bytes / 1e3)}, {"cycles", r.cycles},
                    {"bits_per_weight", num(r.bits_per_weight)}, {"front_energy", static_cast<bool>(fe[i])},
                    {"front_bytes", static_cast<bool>(fb[i])}, {"front_cycles", static_cast<bool>(fc[i])}});
    if (fe[i])
      for (const auto& l : r.layers)
        for (const auto& lv : l.levels)
          layers.push_back({{"model", spec.models[static_cast<std::size_t>(p.model)].name},
                            {"arch", spec.archs[static_cast<std::size_t>(p.arch)].name}, {"point", full}, {"layer", l.name},
                            {"level", lv.name}, {"energy_uJ", num(lv.energy_pj / 1e6)}});
    for (const auto& [name, e] : r.layer_errors)
      heat.push_back({{"model", spec.models[static_cast<std::size_t>(p.model)].name}, {"method", p.method}, {"layer", name},
                      {"format", label}, {"rel_error", num(e)}});
  }
  // One section per (model, arch): three fronts, the per-layer energy of the front, the heatmap.
  J charts = J::array();
  std::ostringstream body;
  int nchart = 0;
  auto chart = [&](const J& vl_spec) {
    const std::string id = "c" + std::to_string(nchart++);
    charts.push_back({{"id", id}, {"spec", vl_spec}});
    body << "<div class=\"chart\" id=\"" << id << "\"></div>\n";
  };
  for (std::size_t m = 0; m < spec.models.size(); ++m)
    for (std::size_t a = 0; a < spec.archs.size(); ++a) {
      const std::string mn = spec.models[m].name, an = spec.archs[a].name;
      bool any = false;
      std::string metric = "metric";
      for (const auto& r : rows)
        if (r["model"] == mn && r["arch"] == an) {
          any = true;
          metric = r["metric"].get<std::string>();
        }
      body << "<h2>" << html_escape(mn) << " on " << html_escape(an) << "</h2>\n";
      if (!any) {
        body << "<p>No point of this model succeeded.</p>\n";
        continue;
      }
      const J filter = {{"filter", {{"and", J::array({{{"field", "model"}, {"equal", mn}}, {{"field", "arch"}, {"equal", an}}})}}}};
      J hc = J::array();
      for (auto [x, title, fr] : {std::tuple{"energy_uJ", "energy per inference (uJ)", "front_energy"},
                                  std::tuple{"model_kB", "weight bytes (kB)", "front_bytes"},
                                  std::tuple{"cycles", "cycles per inference", "front_cycles"}}) {
        const J enc_x = {{"field", x}, {"type", "quantitative"}, {"title", title}, {"scale", {{"zero", false}}}};
        const J enc_y = {{"field", "value"}, {"type", "quantitative"}, {"title", metric}, {"scale", {{"zero", false}}}};
        hc.push_back({{"width", 300},
                      {"height", 240},
                      {"title", metric + " vs " + title},
                      {"layer", J::array({{{"transform", J::array({{{"filter", {{"field", fr}, {"equal", true}}}}})},
                                           {"mark", {{"type", "line"}, {"color", "#888"}}},
                                           {"encoding", {{"x", enc_x}, {"y", enc_y}, {"order", {{"field", x}, {"type", "quantitative"}}}}}},
                                          {{"mark", {{"type", "point"}, {"filled", true}, {"size", 70}}},
                                           {"encoding",
                                            {{"x", enc_x},
                                             {"y", enc_y},
                                             {"color", {{"field", "method"}, {"type", "nominal"}}},
                                             {"shape", {{"field", fr}, {"type", "nominal"}, {"title", "on the front"}}},
                                             {"tooltip", J::array({{{"field", "point"}}, {{"field", "value"}}, {{"field", "delta"}},
                                                                   {{"field", "ci95"}}, {{"field", x}}})}}}}})}});
      }
      chart({{"$schema", "https://vega.github.io/schema/vega-lite/v5.json"},
             {"data", {{"values", rows}}},
             {"transform", J::array({filter})},
             {"hconcat", hc}});
      chart({{"$schema", "https://vega.github.io/schema/vega-lite/v5.json"},
             {"title", "energy per layer and memory level, points on the energy front"},
             {"data", {{"values", layers}}},
             {"transform", J::array({filter})},
             {"facet", {{"row", {{"field", "point"}, {"type", "nominal"}, {"title", nullptr}}}}},
             {"spec",
              {{"width", 700},
               {"height", 120},
               {"mark", "bar"},
               {"encoding",
                {{"x", {{"field", "layer"}, {"type", "nominal"}, {"sort", nullptr}}},
                 {"y", {{"aggregate", "sum"}, {"field", "energy_uJ"}, {"type", "quantitative"}, {"title", "uJ"}}},
                 {"color", {{"field", "level"}, {"type", "nominal"}}},
                 {"tooltip", J::array({{{"field", "layer"}}, {{"field", "level"}}, {{"field", "energy_uJ"}, {"aggregate", "sum"}}})}}}}},
             {"resolve", {{"scale", {{"y", "independent"}}}}}});
      bool has_heat = false;
      for (const auto& h : heat) has_heat = has_heat || h["model"] == mn;
      if (has_heat && a == 0)
        chart({{"$schema", "https://vega.github.io/schema/vega-lite/v5.json"},
               {"title", "relative output error per layer and format (log scale)"},
               {"data", {{"values", heat}}},
               {"transform", J::array({{{"filter", {{"field", "model"}, {"equal", mn}}}}})},
               {"facet", {{"column", {{"field", "method"}, {"type", "nominal"}}}}},
               {"spec",
                {{"mark", "rect"},
                 {"encoding",
                  {{"x", {{"field", "format"}, {"type", "nominal"}}},
                   {"y", {{"field", "layer"}, {"type", "nominal"}, {"sort", nullptr}}},
                   {"color", {{"field", "rel_error"}, {"type", "quantitative"}, {"scale", {{"type", "log"}, {"scheme", "viridis"}}}}},
                   {"tooltip", J::array({{{"field", "layer"}}, {{"field", "format"}}, {{"field", "rel_error"}}})}}}}}});
      body << "<table><tr><th>point (energy front)</th><th>" << html_escape(metric)
           << "</th><th>delta &plusmn; ci95</th><th>uJ</th><th>bits/w</th><th>command</th></tr>\n";
      for (std::size_t i = 0; i < points.size(); ++i) {
        if (!fe[i] || spec.models[static_cast<std::size_t>(points[i].model)].name != mn ||
            spec.archs[static_cast<std::size_t>(points[i].arch)].name != an)
          continue;
        const auto& r = results[i];
        char buf[256];
        std::snprintf(buf, sizeof buf, "<td>%.6g</td><td>%+.4g &plusmn; %.2g</td><td>%.4g</td><td>%.3f</td>", r.value, r.delta, r.ci95,
                      r.energy_pj / 1e6, r.bits_per_weight);
        std::string label;
        for (const auto& row : rows)
          if (row["i"] == i) label = row["point"].get<std::string>();
        body << "<tr><td>" << html_escape(label) << "</td>" << buf << "<td><code>" << html_escape(r.command) << "</code></td></tr>\n";
      }
      body << "</table>\n";
    }
  std::ostringstream o;
  const auto js_json = [](const J& j) {
    std::string s = j.dump(-1, ' ', false, J::error_handler_t::replace);
    for (std::size_t k = 0; (k = s.find("</", k)) != std::string::npos; k += 2) s.replace(k, 2, "<\\/");
    return s;
  };
  o << "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>qcast sweep report</title>\n"
    << "<style>body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;"
       "padding:2px 6px;font-size:12px;text-align:left}code{font-size:11px}.chart{margin:1em 0}</style>\n"
    << "<script>window.qcastErrors=[];window.addEventListener('error',function(e){window.qcastErrors.push(String(e.message))});"
       "(function(){var ce=console.error;console.error=function(){window.qcastErrors.push(Array.prototype.join.call(arguments,' '));"
       "ce.apply(console,arguments)}})();</script>\n"
    << "<script>" << vega << "</script>\n<script>" << vl << "</script>\n<script>" << embed << "</script>\n"
    << "</head><body>\n<h1>qcast sweep</h1>\n<p>qcast " << html_escape(version()) << ", " << points.size()
    << " points; objective " << html_escape(spec.objective) << ". Fronts per model and architecture (grey line); the spec:</p>\n<pre>"
    << html_escape(spec.text) << "</pre>\n"
    << body.str() << "<p id=\"status\">rendering</p><pre id=\"errors\"></pre>\n<script>\n"
    << "const charts=" << js_json(charts) << ";\n"
    << "Promise.all(charts.map(function(c){var s=c.spec;return vegaEmbed('#'+c.id,s,{renderer:'svg',actions:false}).then(function(r){"
       "return r.view.runAsync();});}))"
       ".then(function(){document.getElementById('status').textContent='ok: '+charts.length+' charts';"
       "document.getElementById('errors').textContent=window.qcastErrors.join('\\n');})"
       ".catch(function(e){window.qcastErrors.push(String(e));document.getElementById('status').textContent='failed';"
       "document.getElementById('errors').textContent=window.qcastErrors.join('\\n');});\n</script>\n</body></html>\n";
  return o.str();
}

}  // namespace qcast::sweep
