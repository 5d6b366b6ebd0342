// Diagnosis hints (diagnose.cpp), private to wb_compare: compare() calls it once the metrics,
// verdicts and attribution are in.
#pragma once
#include "wb/compare/compare.h"

namespace wb::cmp {

// Fills every TapResult's hints and the result's overall diagnosis, most important first.
void diagnose(CompareResult& r, const ModelDims& d, const ToleranceProfile& p);

}  // namespace wb::cmp
