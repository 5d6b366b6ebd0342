#include "wb/core/tensor_file.h"

#include <H5Cpp.h>
#include <fmt/format.h>

#include <stdexcept>

namespace wb {

namespace {
void write_dataset(H5::Group& g, const std::string& name, const Shape& shape, const float* data) {
  std::vector<hsize_t> dims(shape.begin(), shape.end());
  H5::DataSpace space(static_cast<int>(dims.size()), dims.data());
  H5::DataSet ds = g.createDataSet(name, H5::PredType::IEEE_F32LE, space);
  if (shape_numel(shape) > 0) ds.write(data, H5::PredType::NATIVE_FLOAT);
}
}  // namespace

void write_tensor_file(const std::string& path, const std::vector<float>* samples,
                       const std::vector<NamedTensor>& taps) {
  H5::Exception::dontPrint();
  try {
    H5::H5File f(path, H5F_ACC_TRUNC);
    if (samples != nullptr) {
      H5::Group root = f.openGroup("/");
      write_dataset(root, "samples", {static_cast<int64_t>(samples->size())}, samples->data());
      H5::DataSet ds = f.openDataSet("samples");
      const int64_t rate = 16000;
      H5::Attribute a =
          ds.createAttribute("sample_rate", H5::PredType::STD_I64LE, H5::DataSpace(H5S_SCALAR));
      a.write(H5::PredType::NATIVE_INT64, &rate);
    }
    if (!taps.empty()) {
      H5::Group g = f.createGroup("taps");
      for (const NamedTensor& t : taps) {
        const Tensor f32 = t.tensor->dtype() == DType::f32 ? Tensor() : t.tensor->to(DType::f32);
        const Tensor& src = t.tensor->dtype() == DType::f32 ? *t.tensor : f32;
        write_dataset(g, t.name, src.shape(), src.f32());
      }
    }
  } catch (const H5::Exception& e) {
    throw std::runtime_error(fmt::format("{}: cannot write ({})", path, e.getDetailMsg()));
  }
}

}  // namespace wb
