// The ONNX Runtime kernel of oar.dlrm::BagInteract (float32): checks, then the shared loop.
#include <string>

#include "bag_interact.h"
#include "oar_ort_op.h"

struct BagInteract {
  static constexpr const char* kName = "BagInteract";
  static constexpr ONNXTensorElementDataType kInputs[] = {
      ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64, ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64, ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT,
      ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT};
  static constexpr ONNXTensorElementDataType kOutputs[] = {ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT};

  static OrtStatus* Compute(const oar_ort::Kernel& k) {
    oar_ort::Tensor ids, offsets, weight, dense, out;
    if (OrtStatus* s = k.Input(0, &ids)) return s;
    if (OrtStatus* s = k.Input(1, &offsets)) return s;
    if (OrtStatus* s = k.Input(2, &weight)) return s;
    if (OrtStatus* s = k.Input(3, &dense)) return s;
    if (ids.shape.size() != 3 || offsets.shape.size() != 1 || offsets.shape[0] != ids.shape[1])
      return k.Error("BagInteract: ids must be [batch, features, bag] and offsets [features]");
    if (weight.shape.size() != 2 || dense.shape.size() != 2 || weight.shape[1] != dense.shape[1] ||
        dense.shape[0] != ids.shape[0])
      return k.Error("BagInteract: weight must be [rows, dim] and dense [batch, dim]");
    const int64_t B = ids.shape[0], F = ids.shape[1], L = ids.shape[2], R = weight.shape[0], D = weight.shape[1];
    if (OrtStatus* s = k.Output(0, {B, D + oar_bag_interact::pairs(F)}, &out)) return s;
    const int64_t* id_data = static_cast<const int64_t*>(ids.data);
    const int64_t bad = oar_bag_interact::forward<float>(
        id_data, static_cast<const int64_t*>(offsets.data), static_cast<const float*>(weight.data),
        static_cast<const float*>(dense.data), B, F, L, R, D, static_cast<float*>(out.data));
    if (bad >= 0)
      return k.Error("BagInteract: id " + std::to_string(id_data[bad]) + " of feature " +
                     std::to_string((bad / L) % F) + " is outside its embedding table");
    return nullptr;
  }
};

OAR_ORT_LIBRARY("oar.dlrm", BagInteract)
