// The search over epsilon on synthetic outcomes with a known answer: clip i changes its tokens
// for every epsilon >= t_i, so the budget (at most `allowed` changed) is known in closed form.
#include <doctest/doctest.h>

#include <cmath>
#include <string>
#include <vector>

#include "wb/budget/measure.h"

using namespace wb;
using namespace wb::budget;

namespace {

Level outcome(const std::vector<double>& thresholds, double eps, const Criterion& c) {
  Level l;
  l.epsilon = eps;
  l.clips = static_cast<int>(thresholds.size());
  for (std::size_t i = 0; i < thresholds.size(); ++i)
    if (eps >= thresholds[i]) {
      ++l.changed;
      l.changed_clips.push_back("clip" + std::to_string(i));
    }
  l.kept = l.clips - l.changed;
  l.pass = l.changed <= c.allowed(l.clips);
  return l;
}

}  // namespace

TEST_CASE("allowed changes: max(1, 2 %)") {
  Criterion c;
  CHECK(c.allowed(40) == 1);
  CHECK(c.allowed(80) == 1);
  CHECK(c.allowed(100) == 2);
  CHECK(c.allowed(150) == 3);
}

TEST_CASE("the budget lies within one refinement step below the true threshold") {
  Criterion c;
  SearchOptions o;
  // 40 clips; the second clip to change does so at 0.05: budgets below 0.05 pass
  std::vector<double> t(40, 10.0);
  t[3] = 0.02;
  t[17] = 0.05;
  t[20] = 0.3;
  int calls = 0;
  const SearchResult r = search_budget(o, c, 40, [&](double e) {
    ++calls;
    return outcome(t, e, c);
  });
  CHECK(r.bound == cmp::BudgetBound::exact);
  CHECK(r.budget < 0.05);
  // the ladder's factor 4 halved twice: the budget is within a factor sqrt(2) of the threshold
  CHECK(r.budget >= 0.05 / std::sqrt(2.0) * 0.999);
  CHECK(r.max_rise == 0);
  for (std::size_t i = 1; i < r.levels.size(); ++i)
    CHECK(r.levels[i].epsilon > r.levels[i - 1].epsilon);
  CHECK(calls == static_cast<int>(r.levels.size()));
}

TEST_CASE("bounds: held everywhere, failed at once") {
  Criterion c;
  SearchOptions o;
  const SearchResult all = search_budget(
      o, c, 10, [&](double e) { return outcome(std::vector<double>(10, 100.0), e, c); });
  CHECK(all.bound == cmp::BudgetBound::at_least);
  CHECK(all.budget == o.ladder.back());
  CHECK(all.levels.size() == o.ladder.size());
  const SearchResult none = search_budget(
      o, c, 10, [&](double e) { return outcome(std::vector<double>(10, 1e-9), e, c); });
  CHECK(none.bound == cmp::BudgetBound::below);
  CHECK(none.budget == 0);
  CHECK(none.levels.size() == 1);  // every clip changed at the first epsilon: nothing to climb
}

TEST_CASE("a failing KL fails a level whose tokens all hold; a rise of kept clips is reported") {
  Criterion c;
  c.kl_bound = 0.1;
  SearchOptions o;
  const SearchResult r = search_budget(o, c, 10, [&](double e) {
    Level l = outcome(std::vector<double>(10, 100.0), e, c);
    l.kl_mean = e;  // KL grows with epsilon
    l.pass = l.pass && l.kl_mean <= c.kl_bound;
    if (std::abs(e - 1.024) < 1e-12) {  // non-monotone: 2 clips change at 1.024 only
      l.changed = 2;
      l.kept = 8;
    }
    return l;
  });
  CHECK(r.bound == cmp::BudgetBound::exact);
  CHECK(r.budget <= 0.1);
  CHECK(r.budget >= 0.1 / std::sqrt(2.0) / 1.3);
  CHECK(r.max_rise == 2);
}
