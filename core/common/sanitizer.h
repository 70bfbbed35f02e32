#pragma once
// Whether this build carries AddressSanitizer. Two things differ under it: libsentencepiece
// cannot be loaded (see sentencepiece_tokenizer.cpp), and freed memory stays resident in the
// sanitizer's quarantine instead of going back to the kernel; code and tests that depend on
// either ask here.

namespace pipeprune {

#if defined(__SANITIZE_ADDRESS__)
inline constexpr bool kAddressSanitizer = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
inline constexpr bool kAddressSanitizer = true;
#else
inline constexpr bool kAddressSanitizer = false;
#endif
#else
inline constexpr bool kAddressSanitizer = false;
#endif

}  // namespace pipeprune
