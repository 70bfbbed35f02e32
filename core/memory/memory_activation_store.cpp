#include <ATen/ATen.h>

#include <vector>

#include "core/common/error.h"
#include "core/memory/activation_store.h"

namespace pipeprune {
namespace {

class MemoryActivationStore final : public ActivationStore {
 public:
  MemoryActivationStore(int64_t n_samples, bool host_only)
      : samples_(static_cast<size_t>(n_samples)), host_only_(host_only) {}

  int64_t size() const override { return static_cast<int64_t>(samples_.size()); }

  void put(int64_t index, const at::Tensor& activation) override {
    check_index(index);
    at::Tensor& slot = samples_[static_cast<size_t>(index)];
    const c10::Device where = host_only_ ? c10::Device(c10::kCPU) : activation.device();
    // Reuse the slot's storage when shapes agree: no allocation per sample in the layer loop.
    if (slot.defined() && slot.sizes() == activation.sizes() && slot.dtype() == activation.dtype() &&
        slot.device() == where) {
      slot.copy_(activation);
    } else if (where == activation.device()) {
      slot = activation.clone(at::MemoryFormat::Contiguous);
    } else {
      slot = at::empty(activation.sizes(), activation.options().device(where).pinned_memory(activation.is_cuda()));
      slot.copy_(activation);
    }
  }

  at::Tensor get(int64_t index) const override {
    check_index(index);
    const at::Tensor& slot = samples_[static_cast<size_t>(index)];
    PIPEPRUNE_CHECK(slot.defined(), Error, "activation " << index << " was read before it was written");
    return slot;
  }

  int64_t bytes_in_memory() const override {
    int64_t bytes = 0;
    for (const auto& t : samples_) {
      if (t.defined()) bytes += static_cast<int64_t>(t.nbytes());
    }
    return bytes;
  }
  int64_t bytes_spilled() const override { return 0; }

 private:
  void check_index(int64_t index) const {
    PIPEPRUNE_CHECK(index >= 0 && index < size(), Error,
                    "activation index " << index << " outside [0, " << size() << ")");
  }
  std::vector<at::Tensor> samples_;
  bool host_only_;
};

}  // namespace

std::unique_ptr<ActivationStore> make_memory_activation_store(int64_t n_samples) {
  return std::make_unique<MemoryActivationStore>(n_samples, /*host_only=*/false);
}

std::unique_ptr<ActivationStore> make_host_activation_store(int64_t n_samples) {
  return std::make_unique<MemoryActivationStore>(n_samples, /*host_only=*/true);
}

}  // namespace pipeprune
