// The candidate reads the fault switches of the one table (wb/core/faults.h).
#pragma once
#include "wb/core/faults.h"

namespace wb::cand {
using wb::AttnScale;
using wb::Faults;
}  // namespace wb::cand
