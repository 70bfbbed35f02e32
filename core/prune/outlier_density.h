// OWL's layerwise outlier density (LOD) of one decoder layer, from its dense weights and the
// Wanda statistic of each linear's input (luuyin/OWL lib/prune_all.py P:924-943,
// check_outlier_mean P:139): with A = |W| * sqrt(scaler_row) for every linear of the layer,
//   D = 100 * #(A > M * mean(A)) / numel(A),
// mean and count over all the layer's linears together (so the MLP's entries dominate), strict
// ">", a percentage. The original concatenates the seven metrics and takes one fp32 mean; we
// sum each linear's metric in float64 and never hold more than one linear's metric at a time,
// then compare against the fp32 threshold the original compares against.
#pragma once

#include <ATen/core/Tensor.h>

#include <vector>

namespace pipeprune {

struct OutlierInput {
  at::Tensor weight;      // [rows, cols], any float dtype, any device
  at::Tensor scaler_row;  // [cols] fp32: the running mean over samples of ||x_j||^2
};

// The layer's outlier density in percent (see above). `m`: OWL's M (--owl-m).
double layer_outlier_percent(const std::vector<OutlierInput>& linears, double m);

}  // namespace pipeprune
