#include "wb/core/precision.h"

namespace wb {

std::string_view to_string(Precision p) { return name_of(kPrecisionNames, p); }

std::string precision_names() { return names_of(kPrecisionNames); }

Precision parse_precision(std::string_view s) {
  return parse_value(kPrecisionNames, s, "--precision");
}

}  // namespace wb
