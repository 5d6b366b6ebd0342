// The wb-cuda module: workbench/cuda's CUDA candidate (linked in from wb_cuda) behind the table
// of cuda_module.h. Its one exported symbol is the entry point below.
#include "cuda_module.h"
#include "wb_module_build.h"

namespace wb::modules {
namespace {

const CudaModule kTable{
    {WB_MODULE_BUILD, sizeof(CudaModule)}, &cuda::backend_of, &cuda::make_encoder};

}  // namespace
}  // namespace wb::modules

extern "C" const void* wb_cuda_module_v1() { return &wb::modules::kTable; }
