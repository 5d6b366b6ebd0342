#include "wb/compare/transcript.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <stdexcept>

namespace wb::cmp {

Repetition find_repetition(const std::vector<int>& t) {
  Repetition best;
  const int n = static_cast<int>(t.size());
  for (int g = 1; g <= 8; ++g) {
    // run[i]: tokens equal to the one g earlier, counted back to back
    int run = 0;
    for (int i = g; i < n; ++i) {
      run = t[static_cast<std::size_t>(i)] == t[static_cast<std::size_t>(i - g)] ? run + 1 : 0;
      const int repeats = 1 + (run / g);  // whole extra copies of the n-gram
      if (run >= g && repeats > best.repeats) {
        best.ngram = g;
        best.repeats = repeats;
        best.start = i - run - g + 1;
      }
    }
  }
  best.flagged = best.repeats >= 4 && best.repeats * best.ngram >= 8;
  return best;
}

namespace {

// log-softmax of one row in float64
std::vector<double> log_softmax(const Tensor& logits, int64_t row) {
  const int64_t v = logits.dim(1);
  std::vector<double> x(static_cast<std::size_t>(v));
  for (int64_t j = 0; j < v; ++j)
    x[static_cast<std::size_t>(j)] =
        logits.dtype() == DType::f64 ? logits.f64()[row * v + j] : logits.f32()[row * v + j];
  const double mx = *std::max_element(x.begin(), x.end());
  double s = 0.0;
  for (double a : x) s += std::exp(a - mx);
  const double lse = mx + std::log(s);
  for (double& a : x) a -= lse;
  return x;
}

std::vector<TokenProb> top5(const std::vector<double>& lp) {
  std::vector<int> idx(lp.size());
  std::iota(idx.begin(), idx.end(), 0);
  const std::size_t k = std::min<std::size_t>(5, idx.size());
  std::partial_sort(idx.begin(), idx.begin() + static_cast<std::ptrdiff_t>(k), idx.end(),
                    [&](int a, int b) {
                      return lp[static_cast<std::size_t>(a)] > lp[static_cast<std::size_t>(b)];
                    });
  std::vector<TokenProb> out;
  for (std::size_t i = 0; i < k; ++i)
    out.push_back({idx[i], std::exp(lp[static_cast<std::size_t>(idx[i])])});
  return out;
}

}  // namespace

TranscriptImpact transcript_impact(const std::vector<int>& ref_tokens,
                                   const std::vector<int>& cand_tokens, const Tensor& ref_logits,
                                   const Tensor& cand_logits, bool cand_logits_follow_ref) {
  TranscriptImpact r;
  r.ref_tokens = ref_tokens;
  r.cand_tokens = cand_tokens;
  const std::size_t common = std::min(ref_tokens.size(), cand_tokens.size());
  r.positions = static_cast<int>(std::max(ref_tokens.size(), cand_tokens.size()));
  for (std::size_t i = 0; i < common; ++i) {
    if (ref_tokens[i] == cand_tokens[i]) {
      ++r.agree;
    } else if (r.first_diff < 0) {
      r.first_diff = static_cast<int>(i);
    }
  }
  if (r.first_diff < 0 && ref_tokens.size() != cand_tokens.size())
    r.first_diff = static_cast<int>(common);
  r.ref_rep = find_repetition(ref_tokens);
  r.cand_rep = find_repetition(cand_tokens);
  if (ref_logits.numel() == 0 || cand_logits.numel() == 0) return r;
  if (ref_logits.ndim() != 2 || cand_logits.ndim() != 2 || ref_logits.dim(1) != cand_logits.dim(1))
    throw std::invalid_argument(fmt::format("transcript impact: logits {} vs {}",
                                            shape_str(ref_logits.shape()),
                                            shape_str(cand_logits.shape())));
  // Rows: prompt + tokens; row prompt - 1 + s predicts generated token s.
  const int64_t prompt = ref_logits.dim(0) - static_cast<int64_t>(ref_tokens.size());
  const int64_t cand_prompt =
      cand_logits.dim(0) -
      static_cast<int64_t>(cand_logits_follow_ref ? ref_tokens.size() : cand_tokens.size());
  if (prompt < 1 || cand_prompt != prompt)
    throw std::invalid_argument(fmt::format(
        "transcript impact: logits rows {} / {} do not match {} / {} tokens after one prompt",
        ref_logits.dim(0), cand_logits.dim(0), ref_tokens.size(),
        cand_logits_follow_ref ? ref_tokens.size() : cand_tokens.size()));
  // Top-5 where the tokens first differ: both sides saw the same prefix up to there.
  if (r.first_diff >= 0 && prompt - 1 + r.first_diff < ref_logits.dim(0) &&
      prompt - 1 + r.first_diff < cand_logits.dim(0)) {
    r.ref_top5 = top5(log_softmax(ref_logits, prompt - 1 + r.first_diff));
    r.cand_top5 = top5(log_softmax(cand_logits, prompt - 1 + r.first_diff));
  }
  // Teacher-forced KL over the reference's tokens: when the candidate's logits follow them, or
  // when its own tokens are the same.
  r.teacher_forced = cand_logits_follow_ref || r.first_diff < 0;
  if (!r.teacher_forced) return r;
  for (int64_t row = prompt - 1; row < ref_logits.dim(0); ++row) {
    const std::vector<double> a = log_softmax(ref_logits, row), b = log_softmax(cand_logits, row);
    double kl = 0.0;
    for (std::size_t j = 0; j < a.size(); ++j) kl += std::exp(a[j]) * (a[j] - b[j]);
    kl = std::max(kl, 0.0);  // round-off can leave -1e-17
    r.kl.push_back(kl);
    if (kl > r.kl_max || r.kl_max_step < 0) {
      r.kl_max = kl;
      r.kl_max_step = static_cast<int>(r.kl.size()) - 1;
    }
  }
  double s = 0.0;
  for (double k : r.kl) s += k;
  r.kl_mean = r.kl.empty() ? 0.0 : s / static_cast<double>(r.kl.size());
  return r;
}

}  // namespace wb::cmp
