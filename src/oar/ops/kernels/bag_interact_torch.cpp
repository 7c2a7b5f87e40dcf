// The PyTorch CPU kernel of oar_dlrm::bag_interact: checks, then the shared loop.
#include <torch/extension.h>

#include "bag_interact.h"

torch::Tensor bag_interact(torch::Tensor ids, torch::Tensor offsets, torch::Tensor weight, torch::Tensor dense) {
  TORCH_CHECK(ids.dim() == 3 && ids.scalar_type() == torch::kInt64, "ids must be int64 [batch, features, bag]");
  TORCH_CHECK(offsets.dim() == 1 && offsets.size(0) == ids.size(1) && offsets.scalar_type() == torch::kInt64,
              "offsets must be int64 [features]");
  TORCH_CHECK(weight.dim() == 2 && dense.dim() == 2 && weight.size(1) == dense.size(1), "weight [rows, dim], dense [batch, dim]");
  TORCH_CHECK(dense.size(0) == ids.size(0), "dense and ids must have the same batch size");
  TORCH_CHECK(weight.scalar_type() == dense.scalar_type(), "weight and dense must have the same dtype");
  ids = ids.contiguous();
  offsets = offsets.contiguous();
  weight = weight.contiguous();
  dense = dense.contiguous();
  const int64_t B = ids.size(0), F = ids.size(1), L = ids.size(2), R = weight.size(0), D = weight.size(1);
  auto out = torch::empty({B, D + oar_bag_interact::pairs(F)}, dense.options());
  AT_DISPATCH_FLOATING_TYPES(dense.scalar_type(), "bag_interact", [&] {
    const int64_t bad = oar_bag_interact::forward<scalar_t>(ids.data_ptr<int64_t>(), offsets.data_ptr<int64_t>(),
                                                            weight.data_ptr<scalar_t>(), dense.data_ptr<scalar_t>(),
                                                            B, F, L, R, D, out.data_ptr<scalar_t>());
    TORCH_CHECK(bad < 0, "bag_interact: id ", bad < 0 ? 0 : ids.data_ptr<int64_t>()[bad], " of feature ",
                bad < 0 ? 0 : (bad / L) % F, " is outside its embedding table");
  });
  return out;
}
