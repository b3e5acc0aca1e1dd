// The hand-derived layer lists in examples/models/ against the real models in ../shared/models:
// a minimal protobuf reader pulls every Conv / Gemm node (weight shape, strides, pads, groups) out of
// the ONNX file, and the JSON must list the same layers in the same order. Input sizes are checked
// for consistency along the chain (each conv's input is the previous conv's output).
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "qcast/hw.hpp"
#include "test_support.hpp"

using namespace qcast::hw;

namespace {

// Protocol-buffer wire format, just enough for ONNX graphs.
struct Reader {
  const std::uint8_t* p;
  const std::uint8_t* end;
  bool more() const { return p < end; }
  std::uint64_t varint() {
    std::uint64_t v = 0;
    for (int s = 0; p < end; s += 7) {
      std::uint8_t b = *p++;
      v |= static_cast<std::uint64_t>(b & 0x7f) << s;
      if (!(b & 0x80)) break;
    }
    return v;
  }
  // Calls fn(field, wire type, sub-reader for length-delimited / value for varint).
  template <class F>
  void fields(F fn) {
    while (more()) {
      std::uint64_t key = varint();
      int field = static_cast<int>(key >> 3), wt = static_cast<int>(key & 7);
      if (wt == 0) {
        std::uint64_t v = varint();
        fn(field, wt, Reader{nullptr, nullptr}, v);
      } else if (wt == 2) {
        std::uint64_t n = varint();
        Reader sub{p, p + n};
        p += n;
        fn(field, wt, sub, 0);
      } else if (wt == 1) {
        p += 8;
      } else if (wt == 5) {
        p += 4;
      } else {
        ADD_FAILURE() << "unsupported wire type " << wt;
        p = end;
      }
    }
  }
  std::string str() const { return std::string(reinterpret_cast<const char*>(p), end - p); }
};

struct Node {
  std::string op;
  std::vector<std::string> inputs;
  std::map<std::string, std::vector<std::int64_t>> ints;
};

void read_ints(int wt, Reader sub, std::uint64_t v, std::vector<std::int64_t>& out) {
  if (wt == 0) {
    out.push_back(static_cast<std::int64_t>(v));
  } else {
    while (sub.more()) out.push_back(static_cast<std::int64_t>(sub.varint()));
  }
}

void read_onnx(const std::string& path, std::vector<Node>& nodes, std::map<std::string, std::vector<std::int64_t>>& dims) {
  std::ifstream in(path, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  Reader model{reinterpret_cast<const std::uint8_t*>(bytes.data()), reinterpret_cast<const std::uint8_t*>(bytes.data()) + bytes.size()};
  model.fields([&](int f, int wt, Reader graph, std::uint64_t) {
    if (f != 7 || wt != 2) return;  // ModelProto.graph
    graph.fields([&](int gf, int gwt, Reader r, std::uint64_t) {
      if (gwt != 2) return;
      if (gf == 1) {  // NodeProto
        Node n;
        r.fields([&](int nf, int nwt, Reader x, std::uint64_t) {
          if (nf == 1 && nwt == 2) n.inputs.push_back(x.str());
          if (nf == 4 && nwt == 2) n.op = x.str();
          if (nf == 5 && nwt == 2) {  // AttributeProto
            std::string name;
            std::vector<std::int64_t> vals;
            x.fields([&](int af, int awt, Reader y, std::uint64_t v) {
              if (af == 1 && awt == 2) name = y.str();
              if (af == 3 && awt == 0) vals.push_back(static_cast<std::int64_t>(v));
              if (af == 8) read_ints(awt, y, v, vals);
            });
            n.ints[name] = vals;
          }
        });
        nodes.push_back(n);
      } else if (gf == 5) {  // TensorProto initializer
        std::string name;
        std::vector<std::int64_t> d;
        r.fields([&](int tf, int twt, Reader y, std::uint64_t v) {
          if (tf == 1) read_ints(twt, y, v, d);
          if (tf == 8 && twt == 2) name = y.str();
        });
        dims[name] = d;
      }
    });
  });
}

// QCAST_DUMP_ONNX=1 prints the MAC nodes found (to update examples/models/make_layers.py).
void dump(const Node& n, std::map<std::string, std::vector<std::int64_t>>& dims) {
  std::printf("%s weight", n.op.c_str());
  for (auto x : dims[n.inputs[1]]) std::printf(" %lld", static_cast<long long>(x));
  for (auto& [a, v] : n.ints) {
    std::printf("  %s=", a.c_str());
    for (auto x : v) std::printf("%lld,", static_cast<long long>(x));
  }
  std::printf("\n");
}

void check_model(const std::string& onnx, const std::string& json, std::int64_t first_hw) {
  std::vector<Node> nodes;
  std::map<std::string, std::vector<std::int64_t>> dims;
  read_onnx(onnx, nodes, dims);
  std::vector<LayerShape> layers;
  std::vector<bool> after_conv;  // the JSON entry before this layer is a convolution
  std::string prev_op;
  for (auto& l : read_layers_json(json)) {
    if (layer_has_macs(l)) {
      layers.push_back(l);
      after_conv.push_back(prev_op == "conv");
    }
    prev_op = l.op;
  }
  size_t k = 0;
  std::int64_t prev_out = first_hw;
  for (auto& n : nodes) {
    if (n.op != "Conv" && n.op != "Gemm" && n.op != "MatMul") continue;
    ASSERT_LT(k, layers.size()) << "the ONNX model has more MAC layers than " << json;
    if (std::getenv("QCAST_DUMP_ONNX")) dump(n, dims);
    const LayerShape& l = layers[k++];
    ASSERT_GE(n.inputs.size(), 2u);
    ASSERT_TRUE(dims.count(n.inputs[1])) << "weight " << n.inputs[1] << " is not an initializer";
    auto w = dims[n.inputs[1]];
    if (n.op == "Conv") {
      ASSERT_EQ(w.size(), 4u);
      EXPECT_EQ(l.op, "conv") << l.name;
      auto g = n.ints.count("group") ? n.ints["group"][0] : 1;
      EXPECT_EQ(l.groups, g) << l.name;
      EXPECT_EQ(l.M, w[0]) << l.name;
      EXPECT_EQ(l.C, w[1] * g) << l.name;
      EXPECT_EQ(l.R, w[2]) << l.name;
      EXPECT_EQ(l.S, w[3]) << l.name;
      auto s = n.ints.count("strides") ? n.ints["strides"] : std::vector<std::int64_t>{1, 1};
      EXPECT_EQ(l.stride, s[0]) << l.name;
      auto p = n.ints.count("pads") ? n.ints["pads"] : std::vector<std::int64_t>{0, 0, 0, 0};
      EXPECT_EQ(l.pad, p[0]) << l.name;
      if (after_conv[k - 1]) { EXPECT_EQ(l.H, prev_out) << l.name << ": input is not the previous conv's output"; }
      if (k == 1) { EXPECT_EQ(l.H, first_hw); }
      prev_out = (l.H + 2 * l.pad - l.R) / l.stride + 1;
    } else {
      ASSERT_EQ(w.size(), 2u);
      EXPECT_EQ(l.op, "gemm") << l.name;
      bool transB = n.ints.count("transB") && n.ints["transB"][0] == 1;
      EXPECT_EQ(l.M, transB ? w[0] : w[1]) << l.name;
      EXPECT_EQ(l.C, transB ? w[1] : w[0]) << l.name;
    }
  }
  EXPECT_EQ(k, layers.size()) << json << " lists MAC layers the ONNX model does not have";
}

}  // namespace

TEST(HwModelLayers, Resnet20MatchesOnnx) {
  QCAST_REQUIRE_SHARED("models/resnet20-cifar10.onnx");
  check_model(qcast::test::shared_dir() + "/models/resnet20-cifar10.onnx",
              std::string(QCAST_SOURCE_DIR) + "/examples/models/resnet20-cifar10.layers.json", 32);
}

TEST(HwModelLayers, Lenet5MatchesOnnx) {
  QCAST_REQUIRE_SHARED("models/lenet5-mnist.onnx");
  check_model(qcast::test::shared_dir() + "/models/lenet5-mnist.onnx",
              std::string(QCAST_SOURCE_DIR) + "/examples/models/lenet5-mnist.layers.json", 32);
}

// `cost --model` takes the model file itself (here ONNX, names = the graph's node names, as in recipes),
// and the layer JSON that `inspect --json` writes for it; both give the same layers and the same costs.
TEST(HwModelLayers, CostTakesTheModelFileAndItsInspectJsonAlike) {
  QCAST_REQUIRE_SHARED("models/lenet5-mnist.onnx");
  const std::string onnx = qcast::test::shared_dir() + "/models/lenet5-mnist.onnx";
  std::vector<LayerShape> mac;
  for (const auto& l : model_layer_shapes(onnx))
    if (layer_has_macs(l)) mac.push_back(l);
  std::vector<LayerShape> hand;
  for (const auto& l : read_layers_json(std::string(QCAST_SOURCE_DIR) + "/examples/models/lenet5-mnist.layers.json"))
    if (layer_has_macs(l)) hand.push_back(l);
  ASSERT_EQ(mac.size(), hand.size());
  for (std::size_t i = 0; i < mac.size(); ++i) {
    SCOPED_TRACE(mac[i].name);
    EXPECT_EQ(mac[i].name.rfind("/", 0), 0u) << "an ONNX node name";
    EXPECT_EQ(mac[i].op, hand[i].op);
    EXPECT_EQ(mac[i].C, hand[i].C);
    EXPECT_EQ(mac[i].M, hand[i].M);
    EXPECT_EQ(mac[i].R, hand[i].R);
    EXPECT_EQ(mac[i].P, hand[i].P);
    EXPECT_EQ(mac[i].Q, hand[i].Q);
    EXPECT_EQ(mac[i].stride, hand[i].stride);
  }
  qcast::test::TempDir d;
  auto ins = qcast::test::run_cli("inspect " + onnx + " --json");
  ASSERT_EQ(ins.rc, 0) << ins.err;
  std::ofstream(d.file("lenet.json")) << ins.out;
  const std::string common = " --arch " QCAST_SOURCE_DIR "/examples/arch/eyeriss_like.yaml --recipe int4@fp16/g32 --samples 200 --refine 20 --json";
  auto a = qcast::test::run_cli("cost --model " + onnx + common);
  auto b = qcast::test::run_cli("cost --model " + d.file("lenet.json") + common);
  ASSERT_EQ(a.rc, 0) << a.err;
  ASSERT_EQ(b.rc, 0) << b.err;
  auto ja = nlohmann::json::parse(a.out), jb = nlohmann::json::parse(b.out);
  for (auto* j : {&ja, &jb})  // the mapper's wall time is the only thing allowed to differ
    for (auto& l : (*j)["layers"]) l["search"].erase("seconds");
  EXPECT_EQ(ja["layers"], jb["layers"]);
  EXPECT_EQ(ja["total"], jb["total"]);
  EXPECT_EQ(ja["layers"][0]["name"], "/convnet/c1/Conv");
  // A tensor file is refused naming what it is.
  auto bad = qcast::test::run_cli("cost --model " + qcast::test::shared_dir() + "/models/lenet5-mnist.safetensors" + common);
  EXPECT_EQ(bad.rc, 2);
  EXPECT_NE(bad.err.find("safetensors"), std::string::npos) << bad.err;
}

// cost --model ranks the layers by energy (shares of the totals) and --layer picks layers by the names that
// inspect, eval and recipes use; a pattern that matches nothing lists the layers.
TEST(HwModelLayers, CostRanksLayersAndPicksThemByName) {
  QCAST_REQUIRE_SHARED("models/lenet5-mnist.onnx");
  const std::string onnx = qcast::test::shared_dir() + "/models/lenet5-mnist.onnx";
  const std::string common = " --arch " QCAST_SOURCE_DIR "/examples/arch/eyeriss_like.yaml --recipe int8 --samples 100 --refine 10 --json";
  auto all = qcast::test::run_cli("cost --model " + onnx + common);
  ASSERT_EQ(all.rc, 0) << all.err;
  const auto j = nlohmann::json::parse(all.out);
  const auto& rank = j["ranking"];
  ASSERT_EQ(rank.size(), j["layers"].size());
  double share = 0, energy = 0;
  for (std::size_t i = 0; i < rank.size(); ++i) {
    if (i) { EXPECT_GE(rank[i - 1]["energy_pj"].get<double>(), rank[i]["energy_pj"].get<double>()); }
    share += rank[i]["energy_share"].get<double>();
    energy += rank[i]["energy_pj"].get<double>();
  }
  EXPECT_NEAR(share, 1.0, 1e-9);
  EXPECT_NEAR(energy, j["total"]["energy_pj"].get<double>(), 1e-6 * energy);
  auto fc = qcast::test::run_cli("cost --model " + onnx + " --layer '/fc/*'" + common);
  ASSERT_EQ(fc.rc, 0) << fc.err;
  const auto jf = nlohmann::json::parse(fc.out);
  ASSERT_FALSE(jf["layers"].empty());
  for (const auto& l : jf["layers"]) {
    EXPECT_EQ(l["name"].get<std::string>().rfind("/fc/", 0), 0u) << l["name"];
    // The same layer costs the same whether or not the others are mapped too.
    for (const auto& a : j["layers"])
      if (a["name"] == l["name"]) { EXPECT_EQ(a["energy_pj"], l["energy_pj"]); }
  }
  auto none = qcast::test::run_cli("cost --model " + onnx + " --layer '/nothing/*'" + common);
  EXPECT_EQ(none.rc, 2);
  EXPECT_NE(none.err.find("/convnet/c1/Conv"), std::string::npos) << none.err;
}

// The recipe that eval and quantize take reaches the cost model layer by layer: overrides and skips give
// each layer its own formats (a skipped layer is costed in fp32), and each layer costs what it costs
// alone under those formats. A quantize output is costed with the formats its layers got (its own
// recipe), the same as its base model under that recipe; it refuses a second recipe.
TEST(HwModelLayers, CostAppliesTheRecipePerLayerAndTakesAQuantizeOutput) {
  QCAST_REQUIRE_SHARED("models/lenet5-mnist.onnx");
  const std::string onnx = qcast::test::shared_dir() + "/models/lenet5-mnist.onnx";
  const std::string common = " --arch " QCAST_SOURCE_DIR "/examples/arch/eyeriss_like.yaml --samples 100 --refine 10 --json";
  qcast::test::TempDir d;
  std::ofstream(d.file("mixed.yaml")) << "weights: mxfp4\n"
                                         "activations: mxfp8\n"
                                         "layers:\n"
                                         "  \"/fc/*\": {weights: int8@fp32/ch0, activations: {format: int8, observer: minmax}}\n"
                                         "skip: [\"/convnet/c1/Conv\"]\n"
                                         "accumulator: fp32\n";
  auto mixed = qcast::test::run_cli("cost --model " + onnx + " --recipe " + d.file("mixed.yaml") + common);
  ASSERT_EQ(mixed.rc, 0) << mixed.err;
  const auto jm = nlohmann::json::parse(mixed.out);
  int seen_fc = 0, seen_conv = 0;
  for (const auto& l : jm["layers"]) {
    const std::string name = l["name"];
    SCOPED_TRACE(name);
    const bool fc = name.rfind("/fc/", 0) == 0, skipped = name == "/convnet/c1/Conv";
    const std::string w = skipped ? "fp32" : fc ? "int8@fp32/ch0" : "mxfp4";
    const std::string a = skipped ? "fp32" : fc ? "int8" : "mxfp8";
    EXPECT_EQ(l["precision"]["weights"], w);
    EXPECT_EQ(l["precision"]["activations"], a);
    EXPECT_EQ(l["precision"]["mac"]["accumulator"], "fp32");
    // One layer of each kind, costed alone with its formats as the whole recipe: the same numbers.
    if (!(skipped || (fc && seen_fc++ == 0) || (!fc && !skipped && seen_conv++ == 0))) continue;
    auto alone = qcast::test::run_cli("cost --model " + onnx + " --layer '" + name + "' --weights " + w + " --acts " + a +
                                      " --accumulator fp32" + common);
    ASSERT_EQ(alone.rc, 0) << alone.err;
    const auto ja = nlohmann::json::parse(alone.out);
    ASSERT_EQ(ja["layers"].size(), 1u);
    EXPECT_EQ(ja["layers"][0]["energy_pj"], l["energy_pj"]);
    EXPECT_EQ(ja["layers"][0]["cycles"], l["cycles"]);
  }
  EXPECT_EQ(seen_conv, 2);  // lenet: c1 (skipped), c3, c5 convolutions
  auto text = qcast::test::run_cli("cost --model " + onnx + " --recipe " + d.file("mixed.yaml") +
                                   " --arch " QCAST_SOURCE_DIR "/examples/arch/eyeriss_like.yaml --samples 100 --refine 10");
  ASSERT_EQ(text.rc, 0) << text.err;
  EXPECT_NE(text.out.find("per-layer formats (weights/activations): fp32/fp32 x1 mxfp4/mxfp8 x2 int8@fp32/ch0/int8 x2"), std::string::npos)
      << text.out;
  EXPECT_NE(text.out.find("   formats: weights fp32, activations fp32, accumulator fp32"), std::string::npos) << text.out;

  // quantize's packed output: costed with its stored recipe, like the base model with that recipe.
  QCAST_REQUIRE_SHARED("data/mnist");
  auto q = qcast::test::run_cli("quantize " + onnx + " --method rtn --weights mxfp4 --acts mxfp8 --calib mnist:" +
                                qcast::test::shared_dir() + "/data/mnist --calib-samples 8 --out " + d.file("q.safetensors"));
  ASSERT_EQ(q.rc, 0) << q.err;
  auto cq = qcast::test::run_cli("cost --model " + d.file("q.safetensors") + common);
  auto cb = qcast::test::run_cli("cost --model " + onnx + " --weights mxfp4 --acts mxfp8" + common);
  ASSERT_EQ(cq.rc, 0) << cq.err;
  ASSERT_EQ(cb.rc, 0) << cb.err;
  auto jq = nlohmann::json::parse(cq.out), jb = nlohmann::json::parse(cb.out);
  for (auto* j : {&jq, &jb})
    for (auto& l : (*j)["layers"]) l["search"].erase("seconds");
  EXPECT_EQ(jq["layers"], jb["layers"]);
  EXPECT_EQ(jq["total"], jb["total"]);
  EXPECT_EQ(jq["layers"][1]["precision"]["weights"], "mxfp4");
  auto twice = qcast::test::run_cli("cost --model " + d.file("q.safetensors") + " --recipe int8" + common);
  EXPECT_EQ(twice.rc, 2);
  EXPECT_NE(twice.err.find("its own recipe"), std::string::npos) << twice.err;
  auto moved = qcast::test::run_cli("cost --model " + d.file("q.safetensors") + " --base-model " + d.file("nope.onnx") + common);
  EXPECT_EQ(moved.rc, 2);
  EXPECT_NE(moved.err.find("does not exist (pass --base-model)"), std::string::npos) << moved.err;
}
