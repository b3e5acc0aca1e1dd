// Static (calibrated) activation quantization: fixed-range fake-quant, observers, recipes, calibration of
// lenet5 / stories260K, and static scales stored by qcast quantize.
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <random>

#include "qcast/error.hpp"
#include "qcast/nn/act_quant.hpp"
#include "qcast/nn/dataset.hpp"
#include "qcast/nn/onnx.hpp"
#include "qcast/nn/recipe.hpp"
#include "qcast/ptq/act_calib.hpp"
#include "qcast/ptq/model.hpp"
#include "qcast/quantize.hpp"
#include "test_support.hpp"

using namespace qcast;
using qcast::test::run_cli;

namespace {

std::string S(const std::string& p) { return test::shared_dir() + "/" + p; }

// Laplace(0, 1) samples with a few large outliers: where clipping pays off.
std::vector<float> laplace_with_outliers(std::size_t n, unsigned seed) {
  std::mt19937 g(seed);
  std::uniform_real_distribution<double> u(-0.5, 0.5);
  std::vector<float> x(n);
  for (auto& v : x) {
    const double p = u(g);
    v = static_cast<float>(-std::copysign(1.0, p) * std::log(1 - 2 * std::fabs(p)));
  }
  for (std::size_t k = 0; k < 8; ++k) x[k * (n / 8)] = (k % 2 ? -1.0f : 1.0f) * (40.0f + static_cast<float>(k));
  return x;
}

double sse(const std::vector<float>& a, const std::vector<float>& b) {
  double e = 0;
  for (std::size_t i = 0; i < a.size(); ++i) e += (static_cast<double>(a[i]) - b[i]) * (static_cast<double>(a[i]) - b[i]);
  return e;
}

}  // namespace

TEST(StaticQuant, RangeOfTheDataEqualsDynamicQuantization) {
  auto x = laplace_with_outliers(4096, 1);
  const float mn = *std::min_element(x.begin(), x.end()), mx = *std::max_element(x.begin(), x.end());
  for (const char* name : {"int8@fp32/tensor", "e4m3@fp32/tensor", "uint8@fp32/tensor/asym", "int4@fp16/tensor", "nvfp4"}) {
    const Format f = Format::parse(name);
    std::vector<float> dyn(x.size()), st(x.size());
    fake_quant(f, x.data(), dyn.data(), {64, 64});
    fake_quant_static(f, StaticRange{{mn}, {mx}}, x.data(), st.data(), {64, 64});
    EXPECT_EQ(std::memcmp(dyn.data(), st.data(), x.size() * sizeof(float)), 0) << name;
  }
  // Per channel (axis 1 of [64, 64]): one range per column.
  const Format ch = Format::parse("int8@fp32/ch1");
  StaticRange r;
  for (int c = 0; c < 64; ++c) {
    float lo = 0, hi = 0;
    for (int i = 0; i < 64; ++i) { lo = std::min(lo, x[i * 64 + c]); hi = std::max(hi, x[i * 64 + c]); }
    r.lo.push_back(lo);
    r.hi.push_back(hi);
  }
  std::vector<float> dyn(x.size()), st(x.size());
  fake_quant(ch, x.data(), dyn.data(), {64, 64});
  fake_quant_static(ch, r, x.data(), st.data(), {64, 64});
  EXPECT_EQ(std::memcmp(dyn.data(), st.data(), x.size() * sizeof(float)), 0);
}

TEST(StaticQuant, ValuesBeyondTheRangeSaturateAndThreadsDoNotMatter) {
  const Format f = Format::parse("int8@fp32/tensor");
  std::vector<float> x = {0.5f, -0.25f, 5.0f, -7.0f}, y(4);
  fake_quant_static(f, StaticRange{{-1.0f}, {1.0f}}, x.data(), y.data(), {4});
  EXPECT_FLOAT_EQ(y[2], 1.0f);   // 127 * (1 / 127)
  EXPECT_FLOAT_EQ(y[3], -1.0f);
  EXPECT_NEAR(y[0], 0.5f, 0.5f / 127);
  auto big = laplace_with_outliers(1 << 18, 2);
  std::vector<float> a(big.size()), b(big.size());
  QuantOptions o1, o4;
  o4.threads = 4;
  fake_quant_static(f, StaticRange{{-3.0f}, {3.0f}}, big.data(), a.data(), {static_cast<std::int64_t>(big.size())}, o1);
  fake_quant_static(f, StaticRange{{-3.0f}, {3.0f}}, big.data(), b.data(), {static_cast<std::int64_t>(big.size())}, o4);
  EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)), 0);
}

TEST(StaticQuant, FormatsWithoutAFixedScaleAreRejected) {
  std::vector<float> x(64, 1.0f), y(64);
  for (const char* name : {"mxfp4", "mxfp8", "int8", "int4@fp16/g32", "e4m3@e8m0/t8x8", "int8@fp32/tensor/mse"}) {
    EXPECT_THROW(fake_quant_static(Format::parse(name), StaticRange{{-1}, {1}}, x.data(), y.data(), {8, 8}), Error) << name;
    EXPECT_NE(static_range_unsupported(Format::parse(name)), "") << name;
  }
  EXPECT_EQ(static_range_unsupported(Format::parse("nvfp4")), "");
  // A per-channel format needs one range per channel.
  EXPECT_THROW(fake_quant_static(Format::parse("int8@fp32/ch1"), StaticRange{{-1}, {1}}, x.data(), y.data(), {8, 8}), Error);
}

TEST(Observer, SpecsParseAndRoundTrip) {
  EXPECT_EQ(nn::parse_observer("minmax").kind, nn::ObserverSpec::Kind::MinMax);
  EXPECT_EQ(nn::parse_observer("mse").kind, nn::ObserverSpec::Kind::Mse);
  const auto p = nn::parse_observer("percentile:99.99");
  EXPECT_EQ(p.kind, nn::ObserverSpec::Kind::Percentile);
  EXPECT_DOUBLE_EQ(p.percentile, 99.99);
  EXPECT_EQ(nn::parse_observer(p.name()).percentile, 99.99);
  for (const char* bad : {"foo", "percentile", "percentile:", "percentile:0", "percentile:100.5", "percentile:9x", "min-max"})
    EXPECT_THROW(nn::parse_observer(bad), Error) << bad;
  // A static observer gives a scale-less format one per-tensor fp32 scale; block formats are refused.
  EXPECT_EQ(nn::make_act_quant(Format::parse("int8"), "minmax").format.name(), Format::parse("int8@fp32/tensor").name());
  EXPECT_EQ(nn::make_act_quant(Format::parse("int8"), "").format.name(), "int8");  // dynamic: as written
  EXPECT_THROW(nn::make_act_quant(Format::parse("mxfp4"), "minmax"), Error);
}

TEST(Observer, MinMaxIsExactOverAStream) {
  auto x = laplace_with_outliers(30000, 3);
  ptq::ActObserver sym(Format::parse("int8@fp32/tensor")), asym(Format::parse("uint8@fp32/tensor/asym"));
  for (std::size_t off = 0; off < x.size(); off += 7000) {  // chunks of growing range (outliers are late)
    const std::size_t n = std::min<std::size_t>(7000, x.size() - off);
    sym.observe(x.data() + off, {static_cast<std::int64_t>(n)}, 0);
    asym.observe(x.data() + off, {static_cast<std::int64_t>(n)}, 0);
  }
  const float mn = *std::min_element(x.begin(), x.end()), mx = *std::max_element(x.begin(), x.end());
  const auto mm = nn::parse_observer("minmax");
  const StaticRange rs = sym.range(mm), ra = asym.range(mm);
  EXPECT_EQ(rs.hi[0], std::max(-mn, mx));
  EXPECT_EQ(rs.lo[0], -std::max(-mn, mx));
  EXPECT_EQ(ra.lo[0], mn);
  EXPECT_EQ(ra.hi[0], mx);
  EXPECT_EQ(sym.groups()[0].count(), x.size());
}

TEST(Observer, PercentileIsWithinOneBinOfTheExactValue) {
  auto x = laplace_with_outliers(100000, 4);
  std::vector<float> ax(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) ax[i] = std::fabs(x[i]);
  std::sort(ax.begin(), ax.end());
  ptq::ActObserver chunked(Format::parse("int8@fp32/tensor")), whole(Format::parse("int8@fp32/tensor"));
  for (std::size_t off = 0; off < x.size(); off += 10000) chunked.observe(x.data() + off, {10000}, 0);
  whole.observe(x.data(), {static_cast<std::int64_t>(x.size())}, 0);
  // Chunks whose range grows (the histogram doubles R and merges bins) and one whole batch (R = max|x|):
  // different bins, both within one bin width above the exact percentile.
  for (const ptq::ActObserver* o : {&chunked, &whole})
    for (double p : {99.0, 99.9, 99.99}) {
      const std::size_t k = static_cast<std::size_t>(std::ceil(p / 100 * static_cast<double>(x.size())));  // 1-based rank
      const float exact = ax[k - 1];
      const float got = o->range(nn::parse_observer("percentile:" + std::to_string(p))).hi[0];
      const double w = o->groups()[0].bin_width();
      EXPECT_GE(got, exact) << p;
      EXPECT_LE(got, exact + w) << p;
      EXPECT_LE(w, 2 * ax.back() / ptq::ActHistogram::kBins);  // resolution: at most 2 max|x| / bins
      EXPECT_EQ(o->groups()[0].count(), x.size());
    }
  // 100 % is the exact max.
  EXPECT_EQ(chunked.range(nn::parse_observer("percentile:100")).hi[0], ax.back());
}

TEST(Observer, AsymmetricPercentilesCutBothTails) {
  // Post-ReLU-like data shifted to [-1, ...): both tails matter for a zero-point format.
  auto x = laplace_with_outliers(60000, 6);
  for (auto& v : x) v = std::fabs(v) - 1.0f;
  x[5] = -30.0f;  // one low outlier
  std::vector<float> sorted = x;
  std::sort(sorted.begin(), sorted.end());
  const Format f = Format::parse("uint8@fp32/tensor/asym");
  ptq::ActObserver o(f);
  for (std::size_t off = 0; off < x.size(); off += 20000) o.observe(x.data() + off, {20000}, 0);
  const double w = o.groups()[0].bin_width();
  const double p = 99.9;
  const std::size_t n = x.size();
  const std::size_t k_hi = static_cast<std::size_t>(std::ceil(p / 100 * n));  // rank of the upper cut
  const StaticRange r = o.range(nn::parse_observer("percentile:99.9"));
  EXPECT_GE(r.hi[0], sorted[k_hi - 1]);
  EXPECT_LE(r.hi[0], sorted[k_hi - 1] + w);
  EXPECT_LE(r.lo[0], sorted[n - k_hi]);  // as many values may fall below lo as above hi
  EXPECT_GE(r.lo[0], sorted[n - k_hi] - w);
  EXPECT_GT(r.lo[0], -30.0f);  // the outlier is clipped
  // mse on the zero-point format: no worse than minmax on the data.
  const Shape shp{static_cast<std::int64_t>(n)};
  std::vector<float> qa(n), qb(n);
  fake_quant_static(f, o.range(nn::parse_observer("mse")), x.data(), qa.data(), shp);
  fake_quant_static(f, o.range(nn::parse_observer("minmax")), x.data(), qb.data(), shp);
  EXPECT_LE(sse(x, qa), sse(x, qb));
}

TEST(Observer, MseBeatsMinMaxOnHeavyTails) {
  auto x = laplace_with_outliers(50000, 5);
  const Shape shp{static_cast<std::int64_t>(x.size())};
  for (const char* name : {"int4@fp32/tensor", "int8@fp32/tensor", "e4m3@fp32/tensor", "e2m1@fp32/tensor"}) {
    const Format f = Format::parse(name);
    ptq::ActObserver o(f);
    o.observe(x.data(), shp, 0);
    const StaticRange mse = o.range(nn::parse_observer("mse")), mm = o.range(nn::parse_observer("minmax"));
    std::vector<float> qa(x.size()), qb(x.size());
    fake_quant_static(f, mse, x.data(), qa.data(), shp);
    fake_quant_static(f, mm, x.data(), qb.data(), shp);
    EXPECT_LE(sse(x, qa), sse(x, qb)) << name;
    EXPECT_LE(mse.hi[0], mm.hi[0]) << name;
  }
  // int4 with outliers 40x the bulk: clipping must win clearly.
  const Format f4 = Format::parse("int4@fp32/tensor");
  ptq::ActObserver o(f4);
  o.observe(x.data(), shp, 0);
  std::vector<float> qa(x.size()), qb(x.size());
  fake_quant_static(f4, o.range(nn::parse_observer("mse")), x.data(), qa.data(), shp);
  fake_quant_static(f4, o.range(nn::parse_observer("minmax")), x.data(), qb.data(), shp);
  EXPECT_LT(sse(x, qa), 0.5 * sse(x, qb));
}

TEST(Observer, PerChannelGroupsFollowTheFormatAxis) {
  // [rows, 3] with channel c scaled by (c + 1): per-channel minmax gives each column's extremes.
  std::vector<float> x(300);
  for (int i = 0; i < 100; ++i)
    for (int c = 0; c < 3; ++c) x[i * 3 + c] = static_cast<float>((c + 1) * (i - 40));
  ptq::ActObserver o(Format::parse("int8@fp32/ch1"));
  o.observe(x.data(), {100, 3}, 1);
  const StaticRange r = o.range(nn::parse_observer("minmax"));
  ASSERT_EQ(r.hi.size(), 3u);
  for (int c = 0; c < 3; ++c) EXPECT_EQ(r.hi[c], static_cast<float>((c + 1) * 59));
  EXPECT_THROW(o.observe(x.data(), {75, 4}, 1), Error);  // channel count changed
}

TEST(Recipe, StaticActivationEntries) {
  test::TempDir d;
  std::ofstream(d.file("r.yaml")) << "weights: mxfp8\nactivations: {format: int8, observer: minmax}\nlayers:\n"
                                     "  \"/fc/f7/*\": {activations: {format: e4m3, observer: \"percentile:99.9\"}}\n"
                                     "  \"/fc/*\": {activations: mxfp8}\n  \"/convnet/c3/*\": {weights: mxfp4}\n";
  const nn::Recipe r = nn::load_recipe(d.file("r.yaml"));
  std::string w, a, o;
  r.formats_for("/convnet/c1/Conv", w, a, o);
  EXPECT_EQ(a, "int8");
  EXPECT_EQ(o, "minmax");
  r.formats_for("/fc/f7/Gemm", w, a, o);
  EXPECT_EQ(a, "e4m3");
  EXPECT_EQ(o, "percentile:99.9");
  r.formats_for("/fc/f6/Gemm", w, a, o);  // a plain format replaces the observer too: dynamic
  EXPECT_EQ(a, "mxfp8");
  EXPECT_EQ(o, "");
  r.formats_for("/convnet/c3/Conv", w, a, o);  // weights-only override keeps the top-level activations
  EXPECT_EQ(w, "mxfp4");
  EXPECT_EQ(o, "minmax");
  EXPECT_TRUE(r.has_static_acts());
  std::ofstream(d.file("mx.yaml")) << "activations: {format: mxfp4, observer: minmax}\n";
  try {
    nn::load_recipe(d.file("mx.yaml"));
    FAIL() << "static mxfp4 accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("block scales"), std::string::npos) << e.what();
  }
  std::ofstream(d.file("obs.yaml")) << "activations: {format: int8, observer: maxmin}\n";
  EXPECT_THROW(nn::load_recipe(d.file("obs.yaml")), Error);
  std::ofstream(d.file("key.yaml")) << "activations: {format: int8, observr: minmax}\n";
  EXPECT_THROW(nn::load_recipe(d.file("key.yaml")), Error);
}

TEST(StaticActs, RecipeJsonKeepsObserversAndRangesExactly) {
  nn::Recipe r;
  r.weights = "mxfp4";
  r.acts = "int8";
  r.act_observer = "percentile:99.9";
  nn::LayerOverride o;
  o.pattern = "/fc/*";
  o.acts = "e4m3";
  o.act_observer = "mse";
  r.layers.push_back(o);
  r.act_ranges["/convnet/c1/Conv"] = StaticRange{{-2.4242129f}, {2.4242129f}};
  r.act_ranges["/fc/f6/Gemm"] = StaticRange{{-1.0e-7f, 0.1f}, {3.3333333f, 1.0f / 3}};
  const nn::Recipe b = nn::parse_recipe(nn::recipe_to_json(r), "test");
  EXPECT_EQ(b.act_observer, r.act_observer);
  ASSERT_EQ(b.layers.size(), 1u);
  EXPECT_EQ(b.layers[0].act_observer, "mse");
  EXPECT_EQ(b.act_ranges, r.act_ranges);  // bit-exact floats
  EXPECT_THROW(nn::parse_recipe(R"({"act_ranges": {"x": {"lo": [1.0], "hi": [0.5]}}})", "test"), Error);
  EXPECT_THROW(nn::parse_recipe(R"({"act_ranges": {"x": {"lo": [-1.0, -2.0], "hi": [1.0]}}})", "test"), Error);
}

TEST(StaticActs, Lenet5CalibrationIsThreadIndependentAndAccurate) {
  QCAST_REQUIRE_SHARED("data/mnist/t10k-images-idx3-ubyte.gz");
  ptq::CalibOptions co;
  co.spec = S("data/mnist").insert(0, "mnist:");
  co.samples = 256;
  co.offset = 5000;
  co.batch = 64;
  nn::Recipe r;
  r.acts = "int8";
  r.act_observer = "percentile:99.99";
  std::map<std::string, StaticRange> by_threads[2];
  for (int t : {0, 1}) {
    ptq::Model m = ptq::load_model(S("models/lenet5-mnist.onnx"));
    nn::apply_recipe(m.graph, r);
    by_threads[t] = ptq::calibrate_activations(m, co, t == 0 ? 1 : 3, false);
  }
  EXPECT_EQ(by_threads[0].size(), nn::quantizable_layers(ptq::load_model(S("models/lenet5-mnist.onnx")).graph).size());
  EXPECT_EQ(by_threads[0], by_threads[1]);
  for (auto& [name, rg] : by_threads[0]) EXPECT_GT(rg.hi[0], 0.0f) << name;

  // Accuracy over the whole test set through the CLI: static int8 within 0.5 % of fp32.
  const std::string base = "eval " + S("models/lenet5-mnist.onnx") + " --data mnist:" + S("data/mnist") + " --json";
  auto fp = run_cli(base);
  ASSERT_EQ(fp.rc, 0) << fp.err;
  for (const char* obs : {"minmax", "mse"}) {
    auto q = run_cli(base + " --acts int8 --act-observer " + obs + " --calib mnist:" + S("data/mnist") +
                     " --calib-samples 256 --calib-offset 5000 --threads 2");
    ASSERT_EQ(q.rc, 0) << q.err;
    const auto jf = nlohmann::json::parse(fp.out), jq = nlohmann::json::parse(q.out);
    EXPECT_NEAR(jq["accuracy"].get<double>(), jf["accuracy"].get<double>(), 0.005) << obs;
    EXPECT_EQ(jq["recipe"]["act_observer"], obs);
    EXPECT_EQ(jq["calibration"]["samples"], 256);
  }
}

TEST(StaticActs, QuantizedModelStoresRangesAndReproducesLogitsBitForBit) {
  QCAST_REQUIRE_SHARED("data/mnist/t10k-images-idx3-ubyte.gz");
  test::TempDir d;
  ptq::Model m = ptq::load_model(S("models/lenet5-mnist.onnx"));
  ptq::QuantizeOptions o;
  o.method = "rtn";
  o.recipe.weights = "mxfp8";
  o.recipe.acts = "e4m3";
  o.recipe.act_observer = "mse";
  o.calib.spec = "mnist:" + S("data/mnist");
  o.calib.samples = 128;
  o.calib.offset = 5000;
  o.progress = false;
  const ptq::QuantizeResult res = ptq::quantize_model(m, o);
  ASSERT_EQ(res.recipe.act_ranges.size(), 5u);  // lenet5: 3 Conv + 2 Gemm... (every quantizable layer)
  ptq::write_quantized(d.file("q.safetensors"), m, res, "rtn");
  nn::Recipe stored;
  ptq::Model back = ptq::load_quantized(d.file("q.safetensors"), "", nullptr, &stored);
  EXPECT_EQ(stored.act_ranges, res.recipe.act_ranges);
  nn::ImageSet s = nn::load_images(nn::parse_dataset_spec("mnist:" + S("data/mnist")), 32, 32);
  nn::Value x = nn::Value::floats({100, 1, 32, 32});
  std::copy(s.data.begin(), s.data.begin() + 100 * 32 * 32, x.f->begin());
  const auto y1 = m.graph.run({x}, 2), y2 = back.graph.run({x}, 1);
  ASSERT_EQ(y1[0].numel(), y2[0].numel());
  EXPECT_EQ(std::memcmp(y1[0].fp(), y2[0].fp(), static_cast<std::size_t>(y1[0].numel()) * sizeof(float)), 0);
  // qcast eval of the file (no --calib) equals qcast eval of the base model with the same flags (calibrated).
  auto a = run_cli("eval " + d.file("q.safetensors") + " --data mnist:" + S("data/mnist") + " --limit 2000 --json");
  auto b = run_cli("eval " + S("models/lenet5-mnist.onnx") + " --data mnist:" + S("data/mnist") +
                   " --limit 2000 --json --weights mxfp8 --acts e4m3 --act-observer mse --calib mnist:" + S("data/mnist") +
                   " --calib-samples 128 --calib-offset 5000");
  ASSERT_EQ(a.rc, 0) << a.err;
  ASSERT_EQ(b.rc, 0) << b.err;
  const auto ja = nlohmann::json::parse(a.out), jb = nlohmann::json::parse(b.out);
  EXPECT_EQ(ja["correct"], jb["correct"]);
  EXPECT_EQ(ja["nll"].get<double>(), jb["nll"].get<double>());
}

TEST(StaticActs, CliErrorsExitWith2AndSayWhy) {
  QCAST_REQUIRE_SHARED("data/mnist/t10k-images-idx3-ubyte.gz");
  const std::string base = "eval " + S("models/lenet5-mnist.onnx") + " --data mnist:" + S("data/mnist") + " --limit 10";
  const std::string calib = " --calib mnist:" + S("data/mnist") + " --calib-samples 8";
  struct Case { std::string args, msg; };
  for (const Case& c : std::vector<Case>{
           {" --acts mxfp4 --act-observer minmax" + calib, "block scales"},
           {" --acts int8 --act-observer maxmin" + calib, "unknown activation observer 'maxmin'"},
           {" --acts int8 --act-observer percentile:101" + calib, "(0, 100]"},
           {" --acts int8 --act-observer minmax", "--calib"},
           {" --act-observer minmax" + calib, "needs an activation format"},
           {" --acts int8@fp32/tensor" + calib, "--act-observer"}}) {
    auto r = run_cli(base + c.args);
    EXPECT_EQ(r.rc, 2) << c.args;
    EXPECT_NE(r.err.find(c.msg), std::string::npos) << c.args << ": " << r.err;
  }
}

TEST(StaticActs, Stories260KStaticInt8) {
  QCAST_REQUIRE_SHARED("data/tinystories/valid-excerpt.txt");
  const std::string base = "eval " + S("models/stories260K.bin") + " --tokenizer " + S("models/tok512.bin") + " --data text:" +
                           S("data/tinystories/valid-excerpt.txt") + " --limit 10 --json";
  auto fp = run_cli(base);
  auto st = run_cli(base + " --acts int8 --act-observer minmax --calib text:" + S("data/tinystories/valid-excerpt.txt") +
                    " --calib-samples 8 --calib-offset 20");
  ASSERT_EQ(fp.rc, 0) << fp.err;
  ASSERT_EQ(st.rc, 0) << st.err;
  const double pf = nlohmann::json::parse(fp.out)["perplexity"].get<double>(), ps = nlohmann::json::parse(st.out)["perplexity"].get<double>();
  EXPECT_NE(pf, ps);              // the activations really are quantized
  EXPECT_NEAR(ps, pf, 0.05 * pf);  // int8 per-tensor static: within 5 % of fp32
}
