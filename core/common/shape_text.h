// How a tensor shape reads in a message: "[64, 32]" (the one formatting every error uses).
#pragma once

#include <c10/util/ArrayRef.h>

#include <cstdint>
#include <string>

namespace pipeprune {

// "[64, 32]"; "[]" for a scalar.
std::string shape_text(c10::IntArrayRef shape);

}  // namespace pipeprune
