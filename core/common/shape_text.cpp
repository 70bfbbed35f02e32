#include "core/common/shape_text.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace pipeprune {

std::string shape_text(c10::IntArrayRef shape) { return fmt::format("[{}]", fmt::join(shape, ", ")); }

}  // namespace pipeprune
