// qcast::hw — the hardware cost model: a layer as a perfect loop nest (Problem), an accelerator as a
// hierarchy of storage levels feeding an array of MACs (Architecture), a dataflow (Mapping), and the
// analysis that turns the three into per-level reads / fills / updates, cycles and energy
// (Timeloop's counting conventions; see docs/cost.md).
//
// Units: energies in picojoules (pJ), sizes in elements ("words") unless a name says bits.
// All functions throw qcast::Error for bad input, naming the file and the field at fault.
#pragma once
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "qcast/nn/recipe.hpp"

namespace qcast::hw {

// ---------------------------------------------------------------------------------------------
// Problem
// ---------------------------------------------------------------------------------------------

/// One term `coef * dim` of a projection expression.
struct Term {
  int dim = 0;            ///< index into Problem::dims
  std::int64_t coef = 1;  ///< multiplier (a stride, a dilation, a group size)
};

/// A tensor touched by the loop nest. Each entry of `projection` is one tensor axis, the sum of its
/// terms, e.g. the input width of a convolution is `[[P, Wstride], [R, Wdilation]]`.
struct DataSpace {
  std::string name;
  std::vector<std::vector<Term>> projection;
  bool read_write = false;  ///< true for the output (accumulated with read-modify-write)
};

/// A layer as a perfectly nested loop over named dimensions.
struct Problem {
  std::string name;
  std::vector<std::string> dims;     ///< dimension names, e.g. R S P Q C M N
  std::vector<std::int64_t> bounds;  ///< iteration count of each dimension (>= 1)
  std::vector<DataSpace> data_spaces;

  /// Number of multiply-accumulates (the product of the bounds).
  std::int64_t computes() const;
  /// What an evaluation depends on (dimensions, bounds, every data space's projection), as text: equal
  /// keys, equal problems up to the name. Mapper caches key on it (the sweep's, mixed@energy's).
  std::string key() const;
  /// Index of dimension `name`, or -1.
  int dim_index(const std::string& name) const;
  /// Index of the data space called `name`, or -1.
  int data_space_index(const std::string& name) const;
  /// True when dimension `dim` appears in a projection of data space `ds`.
  bool relevant(int ds, int dim) const;
  /// Number of distinct tensor elements of data space `ds` for the whole problem.
  std::int64_t data_space_size(int ds) const;
  /// Throws qcast::Error (naming `source`) when a coefficient is < 1 or the number of computes or a
  /// data space's size does not fit in 63 bits; every count of an evaluation is then representable.
  void check_sizes(const std::string& source) const;

  /// Parses a Timeloop-style problem YAML (`problem: {shape: {dimensions, data_spaces,
  /// coefficients}, instance}`). `source` names the file in error messages.
  static Problem from_yaml_text(const std::string& text, const std::string& source = "<problem>");
  static Problem from_yaml_file(const std::string& path);
};

/// The role of a data space for bit widths: weights, input activations or outputs.
enum class Role { Weights, Inputs, Outputs };
/// Weights when the name contains "weight"/"filter"/"kernel", Outputs when read-write, else Inputs.
Role role_of(const DataSpace& ds);

// ---------------------------------------------------------------------------------------------
// Architecture
// ---------------------------------------------------------------------------------------------

/// Per-action energies of a component, in pJ per vector access (storage) or per compute (MAC).
struct ActionEnergy {
  double read = 0, write = 0, update = 0, leak = 0, compute = 0;
  std::string source = "builtin";  ///< "ERT" or the built-in table's name
};

/// Mapspace constraints on one level (Timeloop's `constraints:` of an architecture node, or a target
/// of a separate constraints file). Names are the problem's; they are resolved when used.
struct LevelConstraints {
  std::vector<std::string> keep, bypass;  ///< data spaces that must be kept / bypassed here
  /// Fixed factors, "DIM=N" (N >= 1). The mapper honours factors of 1; larger ones are reported.
  std::vector<std::pair<std::string, std::int64_t>> temporal_factors, spatial_factors;
  std::vector<std::string> temporal_permutation, spatial_permutation;  ///< innermost first
  int split = -1;  ///< with spatial_permutation: its first `split` dimensions on meshX, the rest on meshY (-1: free)
  bool empty() const {
    return keep.empty() && bypass.empty() && temporal_factors.empty() && spatial_factors.empty() &&
           temporal_permutation.empty() && spatial_permutation.empty() && split < 0;
  }
};

/// One storage level (a buffer, register file, DRAM).
struct StorageLevel {
  std::string name, cls;
  std::int64_t depth = 0;      ///< vectors; 0 = unbounded (DRAM)
  std::int64_t width = 0;      ///< bits per vector access
  std::int64_t datawidth = 0;  ///< bits per word
  std::int64_t cluster_size = 1;  ///< instances that share one physical access (Timeloop's cluster_size)
  std::int64_t instances = 1;  ///< total instances in the architecture
  std::int64_t mesh_x = 1;     ///< of them along meshX (instances / mesh_x along meshY)
  double read_bandwidth = 0, write_bandwidth = 0;  ///< words / cycle per instance; 0 = unlimited
  ActionEnergy energy;
  /// Timeloop's implied `inter_<container>_spatial` level of a container with a spatial fanout: it
  /// holds nothing, costs nothing, and carries the spatial loops of that fanout. `container` names it.
  bool implied = false;
  std::string container;
  LevelConstraints constraints;
  /// Words per vector access (Timeloop's block size: width / (datawidth * cluster_size), at least 1).
  std::int64_t block_size() const;
  /// Capacity in words (depth * block size); 0 = unbounded.
  std::int64_t size_words() const;
};

/// The MAC array.
struct Arithmetic {
  std::string name, cls;
  std::int64_t instances = 1;
  std::int64_t mesh_x = 1;  ///< instances along meshX
  std::int64_t datawidth = 0;
  ActionEnergy energy;
};

/// Storage levels ordered innermost first (levels[0] feeds the MACs); the last one is the backing store.
struct Architecture {
  std::vector<StorageLevel> levels;
  Arithmetic arith;

  /// Index of the storage level called `name`, or -1. The name of a container with a spatial fanout
  /// resolves to its implied `inter_<name>_spatial` level.
  int level_index(const std::string& name) const;
  /// Spatial fanout between level `i` and what it feeds (level i-1, or the MACs for i = 0).
  std::int64_t fanout(int i) const;
  /// Its extent along meshX and meshY (fanout_x * fanout_y = fanout): Timeloop places each spatial loop
  /// on one axis, and the loops on an axis must fit its extent.
  std::int64_t fanout_x(int i) const;
  std::int64_t fanout_y(int i) const;

  /// Parses a Timeloop v0.4 architecture YAML (`architecture: {nodes: [!Container ..., !Component ...,
  /// !Parallel {nodes: [...]}, !Nothing]}`). Instances come from `name[0..N-1]`, `spatial: {meshX, meshY}`
  /// or attributes `instances`/`meshX`/`meshY` and multiply down the node list. A container with a
  /// spatial fanout below a storage level adds the implied level `inter_<name>_spatial` (as Timeloop
  /// does). The members of a `!Parallel` group become consecutive levels in their listed order (outer
  /// first), as in Timeloop's flattened architecture; `!Nothing` is skipped. Node `constraints` are
  /// kept on the levels (LevelConstraints) for the mapper.
  static Architecture from_yaml_text(const std::string& text, const std::string& source = "<arch>");
  static Architecture from_yaml_file(const std::string& path);

  /// Takes per-action energies from an Accelergy ERT YAML (`ERT: {tables: [{name, actions}]}`);
  /// tables are matched to components by their last name segment. Throws when a component has none.
  void apply_ert_text(const std::string& text, const std::string& source = "<ert>");
  void apply_ert_file(const std::string& path);
  /// Reads a separate mapspace-constraints file (Timeloop's `constraints: {targets: [...]}`,
  /// `mapspace_constraints: [...]` or `mapspace: {constraints: [...]}`; each target
  /// `{target, type: temporal|spatial|bypass|dataspace|datatype|utilization|max_overbooked_proportion,
  /// factors, permutation, keep, bypass, split}`) into the levels' constraints. Returns notes about
  /// what is accepted but not enforced.
  std::vector<std::string> apply_constraints_text(const std::string& text, const std::string& source = "<constraints>");
  std::vector<std::string> apply_constraints_file(const std::string& path);
  /// Fills energies from a built-in table: "horowitz" (45 nm pJ numbers) or "eyeriss" (normalized
  /// costs RF 1, array 2, buffer 6, DRAM 200 times a MAC). `mac_bits` are the operand widths used
  /// for the MAC energy. Components that already have ERT energies keep them.
  void apply_builtin(const std::string& table, double weight_bits, double input_bits);
};

// ---------------------------------------------------------------------------------------------
// Precision (quantization-aware traffic and MAC energy)
// ---------------------------------------------------------------------------------------------

/// Bits per element of a number format in memory, scale overhead included (mxfp4 = 4.25: 32 e2m1
/// values share one 8-bit scale): Format::parse(name).bits_per_element(), plus storage aliases
/// (fp8, fp4, mxfp6, half, tf32 = 32 bits). Throws qcast::Error for unknown names.
double bits_per_element(const std::string& format);
/// True for floating-point formats (their MAC energy scales from the fp32 numbers).
bool is_float_format(const std::string& format);

/// Operand formats of a layer. Empty = use each level's datawidth (Timeloop's behaviour).
struct Precision {
  std::string weights, activations, outputs;  ///< format names; outputs defaults to activations
  /// The MAC's accumulator (fp32, fp16, bf16, int32, int16, ...); empty = default_accumulator().
  std::string accumulator;
  /// Format of partial sums in memory (every level but the backing store's final writes); empty = the
  /// accumulator's.
  std::string partial_sums;
  bool empty() const { return weights.empty() && activations.empty(); }
  /// Bits per element of weights, inputs, or the final outputs (outputs, else activations).
  double bits(Role r) const;
  /// The accumulator actually used (accumulator, else default_accumulator(weights, activations)).
  std::string accumulator_format() const;
  /// Bits of a partial sum in memory (partial_sums, else the accumulator's).
  double psum_bits() const;
  /// The formats as text (weights, activations, outputs, accumulator, partial sums), for cache keys.
  std::string key() const;
  /// The precision of one layer under a recipe: its overrides and skips resolved as eval resolves them
  /// (a full-precision operand is fp32 here), with the recipe's outputs, accumulator and partial sums.
  static Precision for_layer(const nn::Recipe& r, const std::string& layer);
  /// for_layer(cost_recipe(name_or_path), layer).
  static Precision from_recipe(const std::string& name_or_path, const std::string& layer = "");
};

/// The recipe qcast cost takes: a format name ("int8", "mxfp4", "int4@fp16/g32") as the format of both
/// operands (a hardware shorthand: a plain integer is integer arithmetic at that width, its scale
/// irrelevant), or a recipe file in the one recipe format (nn::load_recipe: eval's and quantize's files).
nn::Recipe cost_recipe(const std::string& name_or_path);

/// Per-MAC arithmetic energy of a pair of number formats, by component, in pJ at 45 nm (a bit-level
/// model calibrated on Horowitz, ISSCC 2014; docs/cost.md has the derivation and sources).
struct MacCost {
  std::string weights, activations, accumulator;
  int block = 0;               ///< elements per exact block sum (shared-scale blocks); 0 = none
  bool fixed_point_block = false;  ///< the block sum is an exact fixed-point adder tree
  double multiply = 0;   ///< element multiplier: significand array + exponent add
  double align = 0;      ///< shifting the product into the fixed-point block sum or the accumulator
  double accumulate = 0; ///< block adder tree and/or accumulator adder (float: alignment + normalisation)
  double scale = 0;      ///< per block, per MAC: normalising the block sum, combining the block scales
  double lookup = 0;     ///< codebook decode (nf4): a 2^b-entry multiplexer per element
  double total() const { return multiply + align + accumulate + scale + lookup; }
};
/// Bits of an accumulator or partial-sum format: intN / uintN for N in 2..64 (wider than the element
/// formats allow), else bits_per_element(). Throws qcast::Error for unknown names.
double accumulator_bits(const std::string& format);
/// int32 for integer elements without block scales (int8, int4), else fp32.
std::string default_accumulator(const std::string& weights, const std::string& activations);
/// The MAC model (docs/cost.md, "Arithmetic energy by format"). Throws qcast::Error for unknown formats
/// or an accumulator that is not an int or float element.
MacCost mac_cost(const std::string& weights, const std::string& activations, const std::string& accumulator = "");

/// The model's primitives (pJ, 45 nm), exposed for the tests that check them against Horowitz's table.
namespace arith {
double int_mult(double a_bits, double b_bits);     ///< array multiplier: 0.2 pJ at 8 x 8
double int_add(double bits);                       ///< ripple adder: 0.03 pJ at 8, 0.1 at 32
double fp_mult(double sig_bits, double exp_bits);  ///< stand-alone (rounded) float multiply: fp16 1.1, fp32 3.7
double fp_add(double sig_bits, double exp_bits);   ///< float add (align, add, normalise, round): fp16 0.4, fp32 0.9
double shifter(double width, double stages);       ///< barrel shifter, width x stages 2:1 multiplexers
}  // namespace arith

/// MAC energy in pJ from the Horowitz 45 nm table for operands of `wbits` x `abits`:
/// multiply ~ quadratic, add ~ linear in the bits (int: 0.2 pJ mult / 0.03 pJ add at 8 bit;
/// float: 3.7 / 0.9 pJ at 32 bit).
double mac_energy_pj(double wbits, double abits, bool floating);

// ---------------------------------------------------------------------------------------------
// Mapping
// ---------------------------------------------------------------------------------------------

/// The loops a storage level contributes: temporal factors with their order, spatial factors
/// (distributed over the level's fanout), and which data spaces it keeps.
struct LevelMapping {
  std::vector<std::int64_t> temporal;  ///< per problem dimension
  std::vector<std::int64_t> spatial;   ///< per problem dimension
  std::vector<int> permutation;        ///< temporal loop order, innermost first (Timeloop's convention)
  /// Per dimension: its spatial factor lies along meshY (else meshX). Timeloop's spatial `permutation` +
  /// `split`: the first `split` dimensions of the permutation go to X, the rest to Y (no split: all X).
  std::vector<bool> spatial_y;
  std::vector<bool> keep;              ///< per data space
};

/// One LevelMapping per storage level, same index as Architecture::levels (innermost first).
struct Mapping {
  std::vector<LevelMapping> levels;

  /// All factors 1, everything kept, identity permutation.
  static Mapping trivial(const Problem& p, const Architecture& a);
  /// Parses a Timeloop map YAML (`mapping: [{target, type: temporal|spatial|bypass|dataspace,
  /// factors: "R=3 P=16", permutation: RP, keep, bypass}]`). Dimensions not given a factor get 1
  /// except at the outermost level, which takes the remainder.
  static Mapping from_yaml_text(const std::string& text, const Problem& p, const Architecture& a,
                                const std::string& source = "<map>");
  static Mapping from_yaml_file(const std::string& path, const Problem& p, const Architecture& a);
  /// The mapping in the map-YAML form above (round-trips through from_yaml_text).
  std::string to_yaml(const Problem& p, const Architecture& a) const;
  /// The mapping as an indented loop nest, outermost first, one block per level.
  std::string loop_nest(const Problem& p, const Architecture& a) const;
  /// Empty when the factors multiply to the bounds, fit the fanouts and the outermost level keeps
  /// everything; else the reason. Capacity is checked by evaluate().
  std::string check(const Problem& p, const Architecture& a) const;
};

// ---------------------------------------------------------------------------------------------
// Analysis
// ---------------------------------------------------------------------------------------------

/// Per level and data space, per instance (Timeloop's "Scalar ... (per-instance)").
struct DataSpaceStats {
  std::int64_t reads = 0, fills = 0, updates = 0;
  std::int64_t utilized_capacity = 0;  ///< elements of the tile held by one instance
  std::int64_t partition_size = 0;     ///< distinct elements one instance sees over the whole run
  double energy_pj = 0;                ///< all utilized instances
  /// Bits moved by reads + fills + updates, per instance (at the recipe's widths: partial sums at the
  /// accumulator's, final outputs at the outputs' format; else the level's datawidth).
  double traffic_bits = 0;
};

struct LevelStats {
  std::string name;
  std::int64_t utilized_instances = 1;
  std::vector<DataSpaceStats> ds;  ///< per data space
  double leak_pj = 0;
  double energy_pj = 0;            ///< data spaces + leakage, all instances
  double capacity_bits = 0;        ///< utilized capacity in bits (per instance)
};

struct Evaluation {
  bool valid = false;
  std::string reason;  ///< why invalid (capacity, fanout, factors)
  std::int64_t computes = 0, cycles = 0;
  std::int64_t mac_instances_used = 1;
  double mac_energy_pj = 0;
  std::vector<LevelStats> levels;  ///< innermost first, like Architecture::levels
  double energy_pj = 0;            ///< total
  double utilization = 0;          ///< computes / (cycles * MAC instances)
  double edp() const { return energy_pj * static_cast<double>(cycles); }
};

/// Evaluates a mapping. Exact (Timeloop's conventions) for perfect factorizations; spatial
/// multicast is modelled for dimensions a data space does not depend on. An over-capacity or
/// otherwise illegal mapping returns valid = false with a reason (no exception).
Evaluation evaluate(const Problem& p, const Architecture& a, const Mapping& m, const Precision& prec = {});

// ---------------------------------------------------------------------------------------------
// Model layers
// ---------------------------------------------------------------------------------------------

/// One layer of the layer-shape JSON (docs/cost.md): {"name","op":"conv|gemm|matmul", N C M H W R S
/// P Q stride dilation pad groups}. Pooling and other ops are kept with op set and skipped by cost.
struct LayerShape {
  std::string name, op;
  std::int64_t N = 1, C = 1, M = 1, H = 1, W = 1, R = 1, S = 1, P = 0, Q = 0;
  std::int64_t stride = 1, dilation = 1, pad = 0, groups = 1;
};

/// Reads {"layers":[...]} (the schema `qcast inspect --json` emits).
std::vector<LayerShape> read_layers_json(const std::string& path);
/// The layers of a model file, recognised by content: an ONNX graph (its Conv / Gemm / MatMul nodes under
/// their node names, at `batch`), a llama2.c / HF / GGUF LLaMA (its linear layers, per token, N = batch),
/// or that JSON. Other files are refused naming what they are. `input_shapes` (ONNX only; one per graph
/// input, in order) gives every input's full shape where the model leaves dimensions symbolic beyond the
/// batch (a detector's height and width); empty: symbolic dimensions are `batch`.
std::vector<LayerShape> model_layer_shapes(const std::string& path, std::int64_t batch = 1,
                                           const std::vector<std::vector<std::int64_t>>& input_shapes = {});
/// The same from JSON text; `where` names it in errors.
std::vector<LayerShape> parse_layers_json(const std::string& text, const std::string& where);
/// The layer as a problem: dims R S P Q C M N (plus G for grouped convolutions), data spaces
/// Weights, Inputs, Outputs. gemm/matmul become 1x1 convolutions.
Problem layer_problem(const LayerShape& l);
/// True for ops that have MACs (conv, gemm, matmul, linear).
bool layer_has_macs(const LayerShape& l);

}  // namespace qcast::hw
