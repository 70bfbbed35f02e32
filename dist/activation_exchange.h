// Hidden states moving between pipeline stages: the sender sends each sample as soon as it is
// computed; the receiver checks its dtype and shape against what the model implies.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include <cstdint>
#include <vector>

#include "core/memory/activation_store.h"
#include "dist/transport/transport.h"

namespace pipeprune {

// Message tags, one per stream, so streams of different phases never match each other.
constexpr int kTagCalibration = 11;
constexpr int kTagEvaluation = 12;
constexpr int kTagGeneration = 13;

// An ActivationStore that sends every put() to the next rank instead of keeping it.
class SendingActivationStore final : public ActivationStore {
 public:
  SendingActivationStore(Transport& transport, int destination, int64_t n_samples, int tag);
  int64_t size() const override { return n_samples_; }
  void put(int64_t index, const at::Tensor& activation) override;
  at::Tensor get(int64_t index) const override;  // error: nothing is kept
  int64_t bytes_in_memory() const override { return 0; }
  int64_t bytes_spilled() const override { return 0; }

 private:
  Transport& transport_;
  int destination_;
  int64_t n_samples_;
  int tag_;
  int64_t next_index_ = 0;
};

// Receives `store.size()` samples of shape `shape` from `source`, in order, into `store`.
void receive_activations(Transport& transport, int source, const std::vector<int64_t>& shape,
                         c10::ScalarType dtype, c10::Device device, int tag, ActivationStore& store);

}  // namespace pipeprune
