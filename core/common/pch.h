// Precompiled header shared by every pipeprune target (see CMakeLists.txt): the heavy, stable
// headers only. Sources still include what they use; this only makes those includes cheap.
#pragma once

#include <ATen/ATen.h>
#include <c10/util/irange.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>
