// Checking what a call throws, for tests of error messages.
#pragma once

#include <gtest/gtest.h>

#include <exception>
#include <functional>
#include <string>

namespace pipeprune::testing {

// Runs fn and returns the message of the ErrorType it throws ("" and a test failure otherwise).
template <typename ErrorType>
std::string error_message(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const ErrorType& e) {
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "threw another exception: " << e.what();
    return "";
  }
  ADD_FAILURE() << "did not throw";
  return "";
}

}  // namespace pipeprune::testing
