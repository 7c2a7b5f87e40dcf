// bag_interact: mean-pooled embedding bags + DLRM pairwise dot interaction, in one pass per row.
//
// ids [B, F, L] (negative: padding), offsets [F] (first row of each feature's table in weight),
// weight [R, D], dense [B, D]  ->  out [B, D + (F + 1) * F / 2]: the dense vector, then the dot
// products of every pair (i > j) of [dense, bag_0, ..., bag_{F-1}] in row-major lower-triangle order.
// Plain C++ on raw pointers, shared by the PyTorch kernel and the ONNX Runtime kernel.
#pragma once

#include <cstdint>
#include <cstring>
#include <vector>

namespace oar_bag_interact {

inline int64_t pairs(int64_t features) { return (features + 1) * features / 2; }

// Returns -1, or the flat index into ids of the first id outside the table (nothing is then valid).
template <typename T>
int64_t forward(const int64_t* ids, const int64_t* offsets, const T* weight, const T* dense, int64_t B, int64_t F,
                int64_t L, int64_t R, int64_t D, T* out) {
  const int64_t width = D + pairs(F);
  std::vector<T> vectors(static_cast<size_t>((F + 1) * D));
  for (int64_t b = 0; b < B; ++b) {
    T* t = vectors.data();
    std::memcpy(t, dense + b * D, sizeof(T) * D);
    for (int64_t f = 0; f < F; ++f) {
      T* bag = t + (f + 1) * D;
      std::memset(bag, 0, sizeof(T) * D);
      int64_t count = 0;
      const int64_t* row_ids = ids + (b * F + f) * L;
      for (int64_t l = 0; l < L; ++l) {
        if (row_ids[l] < 0) continue;
        const int64_t row = row_ids[l] + offsets[f];
        if (row >= R || (f + 1 < F && row >= offsets[f + 1])) return (b * F + f) * L + l;
        const T* w = weight + row * D;
        for (int64_t d = 0; d < D; ++d) bag[d] += w[d];
        ++count;
      }
      if (count > 1) {
        const T scale = T(1) / T(count);
        for (int64_t d = 0; d < D; ++d) bag[d] *= scale;
      }
    }
    T* o = out + b * width;
    std::memcpy(o, t, sizeof(T) * D);
    int64_t k = D;
    for (int64_t i = 1; i <= F; ++i) {
      const T* vi = t + i * D;
      for (int64_t j = 0; j < i; ++j) {
        const T* vj = t + j * D;
        T acc = 0;
        for (int64_t d = 0; d < D; ++d) acc += vi[d] * vj[d];
        o[k++] = acc;
      }
    }
  }
  return -1;
}

}  // namespace oar_bag_interact
