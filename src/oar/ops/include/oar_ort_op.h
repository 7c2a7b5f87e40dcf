// A custom op for ONNX Runtime in a few lines: oar's adapter from an op struct to ``OrtCustomOp``.
//
//   struct MyOp {
//     static constexpr const char* kName = "MyOp";
//     static constexpr ONNXTensorElementDataType kInputs[] = {ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT};
//     static constexpr ONNXTensorElementDataType kOutputs[] = {ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT};
//     static OrtStatus* Compute(const oar_ort::Kernel& k);   // nullptr: success
//   };
//   OAR_ORT_LIBRARY("my.domain", MyOp)
//
// The build defines OAR_ORT_VERSION (the onnxruntime version it targets); RegisterCustomOps
// refuses to register in a process running another version, with a message saying so.
#pragma once

#include <cstring>
#include <string>
#include <vector>

#include "oar_ort_abi.h"

namespace oar_ort {

struct Tensor {
  void* data = nullptr;
  std::vector<int64_t> shape;
  ONNXTensorElementDataType type = ONNX_TENSOR_ELEMENT_DATA_TYPE_UNDEFINED;
  int64_t numel() const {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
  }
};

class Kernel {
 public:
  Kernel(const OrtApi* api, OrtKernelContext* context) : api_(api), context_(context) {}

  OrtStatus* Error(const std::string& message) const {
    return slot<OrtStatus* (*)(OrtErrorCode, const char*)>(api_, kCreateStatus)(ORT_INVALID_ARGUMENT, message.c_str());
  }

  OrtStatus* Input(size_t index, Tensor* out) const {
    const OrtValue* value = nullptr;
    auto get = slot<OrtStatus* (*)(const OrtKernelContext*, size_t, const OrtValue**)>(api_, kKernelContextGetInput);
    if (OrtStatus* status = get(context_, index, &value)) return status;
    if (OrtStatus* status = Describe(const_cast<OrtValue*>(value), out)) return status;
    return slot<OrtStatus* (*)(OrtValue*, void**)>(api_, kGetTensorMutableData)(const_cast<OrtValue*>(value), &out->data);
  }

  OrtStatus* Output(size_t index, const std::vector<int64_t>& shape, Tensor* out) const {
    OrtValue* value = nullptr;
    auto get = slot<OrtStatus* (*)(OrtKernelContext*, size_t, const int64_t*, size_t, OrtValue**)>(
        api_, kKernelContextGetOutput);
    if (OrtStatus* status = get(context_, index, shape.data(), shape.size(), &value)) return status;
    out->shape = shape;
    return slot<OrtStatus* (*)(OrtValue*, void**)>(api_, kGetTensorMutableData)(value, &out->data);
  }

 private:
  OrtStatus* Describe(OrtValue* value, Tensor* out) const {
    OrtTensorTypeAndShapeInfo* info = nullptr;
    auto get_info = slot<OrtStatus* (*)(const OrtValue*, OrtTensorTypeAndShapeInfo**)>(api_, kGetTensorTypeAndShape);
    if (OrtStatus* status = get_info(value, &info)) return status;
    size_t rank = 0;
    OrtStatus* status =
        slot<OrtStatus* (*)(const OrtTensorTypeAndShapeInfo*, size_t*)>(api_, kGetDimensionsCount)(info, &rank);
    if (!status) {
      out->shape.assign(rank, 0);
      status = slot<OrtStatus* (*)(const OrtTensorTypeAndShapeInfo*, int64_t*, size_t)>(api_, kGetDimensions)(
          info, out->shape.data(), rank);
    }
    if (!status) {
      status = slot<OrtStatus* (*)(const OrtTensorTypeAndShapeInfo*, ONNXTensorElementDataType*)>(
          api_, kGetTensorElementType)(info, &out->type);
    }
    slot<void (*)(OrtTensorTypeAndShapeInfo*)>(api_, kReleaseTensorTypeAndShapeInfo)(info);
    return status;
  }

  const OrtApi* api_;
  OrtKernelContext* context_;
};

template <typename Op>
struct Adapter {
  static OrtStatus* CreateKernelV2(const OrtCustomOp*, const OrtApi* api, const OrtKernelInfo*, void** kernel) {
    *kernel = const_cast<OrtApi*>(api);
    return nullptr;
  }
  static void* CreateKernel(const OrtCustomOp*, const OrtApi* api, const OrtKernelInfo*) {
    return const_cast<OrtApi*>(api);
  }
  static OrtStatus* ComputeV2(void* kernel, OrtKernelContext* context) {
    return Op::Compute(Kernel(static_cast<const OrtApi*>(kernel), context));
  }
  static void Compute(void* kernel, OrtKernelContext* context) {
    OrtStatus* status = ComputeV2(kernel, context);
    if (status) slot<void (*)(OrtStatus*)>(static_cast<const OrtApi*>(kernel), kReleaseStatus)(status);
  }
  static void Destroy(void*) {}
  static const char* Name(const OrtCustomOp*) { return Op::kName; }
  static const char* Provider(const OrtCustomOp*) { return "CPUExecutionProvider"; }
  static ONNXTensorElementDataType InputType(const OrtCustomOp*, size_t i) { return Op::kInputs[i]; }
  static size_t InputCount(const OrtCustomOp*) { return sizeof(Op::kInputs) / sizeof(Op::kInputs[0]); }
  static ONNXTensorElementDataType OutputType(const OrtCustomOp*, size_t i) { return Op::kOutputs[i]; }
  static size_t OutputCount(const OrtCustomOp*) { return sizeof(Op::kOutputs) / sizeof(Op::kOutputs[0]); }
  static OrtCustomOpInputOutputCharacteristic Required(const OrtCustomOp*, size_t) { return INPUT_OUTPUT_REQUIRED; }
  static OrtMemType MemoryType(const OrtCustomOp*, size_t) { return OrtMemTypeDefault; }
  static int One(const OrtCustomOp*) { return 1; }

  static OrtCustomOp* op() {
    static OrtCustomOp instance = [] {
      OrtCustomOp o;
      std::memset(&o, 0, sizeof(o));
      o.version = kCustomOpVersion;
      o.CreateKernel = CreateKernel;
      o.GetName = Name;
      o.GetExecutionProviderType = Provider;
      o.GetInputType = InputType;
      o.GetInputTypeCount = InputCount;
      o.GetOutputType = OutputType;
      o.GetOutputTypeCount = OutputCount;
      o.KernelCompute = Compute;
      o.KernelDestroy = Destroy;
      o.GetInputCharacteristic = Required;
      o.GetOutputCharacteristic = Required;
      o.GetInputMemoryType = MemoryType;
      o.GetVariadicInputMinArity = One;
      o.GetVariadicInputHomogeneity = One;
      o.GetVariadicOutputMinArity = One;
      o.GetVariadicOutputHomogeneity = One;
      o.CreateKernelV2 = CreateKernelV2;
      o.KernelComputeV2 = ComputeV2;
      return o;
    }();
    return &instance;
  }
};

inline OrtStatus* Register(OrtSessionOptions* options, const OrtApiBase* base, const char* domain, OrtCustomOp* op) {
  const OrtApi* api = base->GetApi(1);
  auto error = [api](const std::string& m) {
    return slot<OrtStatus* (*)(OrtErrorCode, const char*)>(api, kCreateStatus)(ORT_FAIL, m.c_str());
  };
  const std::string running = base->GetVersionString();
  if (running != OAR_ORT_VERSION) {
    return error(std::string("oar custom-op library for domain '") + domain + "' was built for onnxruntime " +
                 OAR_ORT_VERSION + " but this process runs onnxruntime " + running + "; rebuild the package's ops");
  }
  static OrtCustomOpDomain* made = nullptr;  // must outlive every session that uses it
  if (!made) {
    auto create = slot<OrtStatus* (*)(const char*, OrtCustomOpDomain**)>(api, kCreateCustomOpDomain);
    if (OrtStatus* status = create(domain, &made)) return status;
    auto add = slot<OrtStatus* (*)(OrtCustomOpDomain*, const OrtCustomOp*)>(api, kCustomOpDomainAdd);
    if (OrtStatus* status = add(made, op)) return status;
  }
  return slot<OrtStatus* (*)(OrtSessionOptions*, OrtCustomOpDomain*)>(api, kAddCustomOpDomain)(options, made);
}

}  // namespace oar_ort

#define OAR_ORT_LIBRARY(DOMAIN, OP)                                                               \
  extern "C" __attribute__((visibility("default"))) OrtStatus* RegisterCustomOps(                 \
      OrtSessionOptions* options, const OrtApiBase* base) {                                       \
    return oar_ort::Register(options, base, DOMAIN, oar_ort::Adapter<OP>::op());                  \
  }                                                                                               \
  extern "C" __attribute__((visibility("default"))) const char* OarOrtBuiltFor() { return OAR_ORT_VERSION; }
