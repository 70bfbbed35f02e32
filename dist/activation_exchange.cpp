#include "dist/activation_exchange.h"

#include <ATen/ATen.h>

#include "core/common/error.h"

namespace pipeprune {

SendingActivationStore::SendingActivationStore(Transport& transport, int destination, int64_t n_samples, int tag)
    : transport_(transport), destination_(destination), n_samples_(n_samples), tag_(tag) {}

void SendingActivationStore::put(int64_t index, const at::Tensor& activation) {
  // A pass retried after an out-of-memory failure puts again the samples it had already sent;
  // the receiver has them, so they are skipped.
  if (index < next_index_) return;
  // Samples go out in order; the receiver stores them by arrival.
  PIPEPRUNE_CHECK(index == next_index_, Error,
                  "activations must be sent in order: got sample " << index << ", expected " << next_index_);
  transport_.send(activation, destination_, SendOptions{tag_});
  ++next_index_;
}

at::Tensor SendingActivationStore::get(int64_t index) const {
  PIPEPRUNE_FAIL(Error, "activation " << index << " was sent to rank " << destination_ << " and is not kept");
}

void receive_activations(Transport& transport, int source, const std::vector<int64_t>& shape,
                         c10::ScalarType dtype, c10::Device device, int tag, ActivationStore& store) {
  RecvOptions options;
  options.tag = tag;
  options.expect.dtype = dtype;
  options.expect.shape = shape;
  options.device = device;
  for (int64_t s = 0; s < store.size(); ++s) store.put(s, transport.recv(source, options));
}

}  // namespace pipeprune
