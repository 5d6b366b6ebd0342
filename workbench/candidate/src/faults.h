// The candidate reads the shared fault table (wb/core/faults.h) under its own namespace.
#pragma once
#include "wb/core/faults.h"

namespace wb::cand {
using wb::AttnScale;
using wb::fault_names;
using wb::fault_usage;
using wb::Faults;
using wb::parse_faults;
}  // namespace wb::cand
