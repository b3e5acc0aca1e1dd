// Internal: the executor's oneDNN path for Conv nodes (kernels/dnnl.hpp).
//
// A Conv whose weights are constant runs as a oneDNN convolution in a blocked layout, with a following
// Relu, or a residual Add (and its Relu), fused into it when the Conv's output has no other use. Its
// result stays blocked for the next Conv; any other operator, and the graph's outputs, get a plain
// NCHW copy on demand. The rest of the graph runs as before.
#pragma once
#include <cstddef>
#include <memory>
#include <vector>

#include "qcast/kernels/dnnl.hpp"
#include "qcast/nn/graph.hpp"

namespace qcast::nn::detail {

void set_fast_convs_impl(bool on, std::int64_t min_macs);
std::int64_t fast_conv_runs_impl();

class FastConvs {
 public:
  FastConvs(const Graph& g, int threads, bool observed);
  bool enabled() const { return enabled_; }
  /// The order to run the nodes in: the graph's, except that a Conv whose only reader is a residual Add
  /// waits until the Add's other input is computed, so that the Add can be fused into it.
  const std::vector<std::size_t>& order() const { return order_; }
  /// last()[id]: the position in order() of the last node that reads value id (graph outputs and
  /// values nobody reads: nodes.size(), or -1 for unread).
  const std::vector<int>& last() const { return last_; }
  /// Runs node k if this path takes it: a Conv (with what it fuses), a MaxPool / AveragePool of a
  /// blocked tensor, or a node already fused into an earlier Conv (nothing left to do). False: the
  /// caller runs it.
  bool run(std::size_t k, std::vector<Value>& vals, std::vector<bool>& have);
  /// Gives every blocked value among `ids` its plain NCHW data (before an operator reads it).
  void materialize(const std::vector<int>& ids, std::vector<Value>& vals);
  /// Drops the blocked copy of a value that is no longer needed.
  void release(int id) {
    if (id >= 0 && static_cast<std::size_t>(id) < acts_.size()) acts_[id] = kern::dnnl::Act();
  }

 private:
  bool run_pool(std::size_t k, std::vector<Value>& vals, std::vector<bool>& have);
  /// Marks `ids` computed (shape only: nobody reads them as plain data) and keeps `y` as the last one's
  /// blocked value.
  void publish(const std::vector<int>& ids, const Shape& shape, kern::dnnl::Act y, std::vector<Value>& vals, std::vector<bool>& have);

  const Graph& g_;
  int threads_ = 1;
  bool enabled_ = false;
  std::vector<std::size_t> order_;
  std::vector<int> pos_;       // position of each node in order_
  std::vector<int> last_;
  std::vector<int> uses_;      // readers of each value (nodes, plus 1 for a graph output)
  std::vector<int> consumer_;  // the reading node when uses_ == 1, else -1
  std::vector<bool> fused_;    // nodes already computed by an earlier Conv
  std::vector<kern::dnnl::Act> acts_;
};

}  // namespace qcast::nn::detail
