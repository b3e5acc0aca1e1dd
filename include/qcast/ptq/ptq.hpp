// Umbrella header of the layer-level post-training quantization algorithms (docs/algorithms.md).
#pragma once
#include "qcast/ptq/bias.hpp"
#include "qcast/ptq/common.hpp"
#include "qcast/ptq/ed.hpp"
#include "qcast/ptq/gguf.hpp"
#include "qcast/ptq/gptq.hpp"
#include "qcast/ptq/lowrank.hpp"
#include "qcast/ptq/mixed.hpp"
#include "qcast/ptq/rotate.hpp"
#include "qcast/ptq/rtn.hpp"
#include "qcast/ptq/search.hpp"
