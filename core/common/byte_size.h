// Sizes as people write them: "1.50 GiB" out, "70GiB" / "8GB" / "512MiB" in. Pure functions, in
// core/common so that code without the memory library (the report page) formats sizes alike.
#pragma once

#include <cstdint>
#include <string>

namespace pipeprune {

// "1.50 GiB", "12.00 MiB", "512 B"
std::string format_bytes(int64_t bytes);
// Parses "70GiB", "8GB", "512MiB", "1.5TiB", "1024" (bytes). ConfigError naming `flag` otherwise.
int64_t parse_bytes(const std::string& text, const std::string& flag);

}  // namespace pipeprune
