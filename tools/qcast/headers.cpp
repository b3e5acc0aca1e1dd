// Every CLI header in one translation unit: two headers that define the same name (as common.hpp and
// nn_common.hpp once both defined `QuantFlags`, an ODR violation the linker never reports) stop the build.
#include "command.hpp"
#include "common.hpp"
#include "nn_common.hpp"
