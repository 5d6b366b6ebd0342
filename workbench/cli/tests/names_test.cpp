// The CLI's enum <-> name tables: one name per value, and each parses back to its value.
#include <doctest/doctest.h>

#include "encoder_choice.h"
#include "wb/testing/name_tables.h"

using namespace wb::cli;

TEST_CASE("encoder options: one name per value, round trip") {
  wb::testing::check_name_table(kImplNames, "Impl", Impl::port);
  wb::testing::check_name_table(kDeviceNames, "Device", Device::cuda);
  CHECK(parse_impl("candidate") == Impl::candidate);
  CHECK(parse_device("cpu") == Device::cpu);
  CHECK_THROWS_AS(parse_impl("gpu"), wb::UsageError);
}
