// wb info: what this build offers, read from the tables that define it (precisions, the
// candidate's ISAs with what this CPU runs, the built-in tolerance profiles, the fault switches,
// the encoder implementations, the tool version). Scripts read `wb info --json` instead of
// listing any of these themselves.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <nlohmann/json.hpp>
#include <stdexcept>

#include "command.h"
#include "encoder_choice.h"
#include "wb/compare/profile.h"
#include "wb/core/faults.h"
#include "wb/core/precision.h"
#include "wb/core/util.h"
#ifdef WB_HAVE_CANDIDATE
#include "isa_list.h"  // the one ISA list (workbench/candidate/CMakeLists.txt), header only
#endif

namespace wb::cli {
namespace {

nlohmann::json info_json() {
  nlohmann::json j;
  j["tool_version"] = tool_version();
  j["precisions"] = nlohmann::json::array();
  j["profiles"] = nlohmann::json::array();
  for (const auto& [p, name] : kPrecisionNames) {
    j["precisions"].push_back(std::string(name));
    try {  // the built-in profile of each precision that has one
      const auto profile = cmp::ToleranceProfile::for_precision(name);
      j["profiles"].push_back({{"precision", std::string(name)}, {"name", profile.name()}});
    } catch (const std::invalid_argument&) {
    }
  }
  j["isas"] = nlohmann::json::array();
  j["best_isa"] = nullptr;
#ifdef WB_HAVE_CANDIDATE
  // Narrowest first: the widest this CPU runs is the candidate's default (without $WB_ISA).
#define WB_INFO_ISA(name, check)                               \
  {                                                            \
    const bool ok = (check);                                   \
    j["isas"].push_back({{"name", #name}, {"supported", ok}}); \
    if (ok) j["best_isa"] = #name;                             \
  }
  WB_CAND_ISA_LIST(WB_INFO_ISA)
#undef WB_INFO_ISA
#endif
  j["faults"] = nlohmann::json::array();
  for (const FaultInfo& f : fault_table()) j["faults"].push_back(std::string(f.name));
  j["impls"] = nlohmann::json::array();
  for (const auto& [impl, name] : kImplNames) {
    bool built = true;  // parse_impl refuses an implementation this build lacks
    try {
      parse_impl(name);
    } catch (const std::invalid_argument&) {
      built = false;
    }
    j["impls"].push_back({{"name", std::string(name)}, {"built", built}});
  }
  return j;
}

}  // namespace

void add_info(CLI::App& app, Registry& reg) {
  auto json = std::make_shared<bool>(false);
  CLI::App* sub = app.add_subcommand(
      "info", "what this build offers: precisions, ISAs (and this CPU's), profiles, faults");
  sub->add_flag("--json", *json,
                "as JSON {tool_version, precisions, profiles, isas, best_isa, faults, impls}");
  reg.add(sub, [json]() {
    const nlohmann::json j = info_json();
    if (*json) {
      fmt::print("{}\n", j.dump(2));
      return 0;
    }
    auto words = [](const nlohmann::json& a) {
      std::vector<std::string> v;
      for (const auto& x : a) v.push_back(x.get<std::string>());
      return fmt::format("{}", fmt::join(v, ", "));
    };
    std::vector<std::string> isas, profiles, impls;
    for (const auto& i : j["isas"])
      isas.push_back(i["name"].get<std::string>() + (i["supported"] ? "" : " (not this CPU)"));
    for (const auto& p : j["profiles"]) profiles.push_back(p["name"].get<std::string>());
    for (const auto& i : j["impls"])
      impls.push_back(i["name"].get<std::string>() + (i["built"] ? "" : " (not in this build)"));
    fmt::print("tool version: {}\n", j["tool_version"].get<std::string>());
    fmt::print("precisions:   {}\n", words(j["precisions"]));
    fmt::print("ISAs:         {}{}\n", fmt::join(isas, ", "),
               j["best_isa"].is_null() ? "" : " (best: " + j["best_isa"].get<std::string>() + ")");
    fmt::print("profiles:     {} (built in)\n", fmt::join(profiles, ", "));
    fmt::print("faults:       {}\n", words(j["faults"]));
    fmt::print("impls:        {}\n", fmt::join(impls, ", "));
    return 0;
  });
}

}  // namespace wb::cli
