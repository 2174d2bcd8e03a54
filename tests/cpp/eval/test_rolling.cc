// Rolling-window perplexity (eval/rolling.h): the window plan against
// hand-worked cases, and the NLL, ppl, bits per byte and standard errors
// against the float64 PyTorch oracle (tests/python/eval_oracle.py, whose
// windowing is written from lm-eval's description, not from this code) on
// the golden model of every mixer and hybrid (tests/python/cases/*.yaml).
//
// Tolerance: every token's NLL is positive, so the relative error of their
// sum is at most (largest absolute error of one token) / (mean NLL). One
// token's log-softmax is off by about the fp32 logit error, ~1e-6 x max|logit|
// (tests/reference/check_case.cc bounds it by 2e-5 and sees ~1e-6), against a
// mean NLL of 2-6 nats on these models: we accept 1e-5 relative on the NLL,
// bpb (linear in it) and ppl (exp(mean NLL): its relative error is the
// absolute error of the mean NLL), as the issue asks. The standard errors
// (sum(l^2) - sum(l)^2 / n, which loses a factor mean^2 / var ~ 10-100 to
// cancellation, still far inside double) get the same bound. Measured worst
// over all cases: NLL and bpb 3e-7, ppl 1.1e-6, standard errors 3.4e-7. A
// wrong window (a token scored twice, missed, or read with other context, or
// the end-of-document id left out) moves the NLL by ~1e-2 relative or more.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <set>
#include <string>

#include "eval/rolling.h"
#include "model/model.h"
#include "nlohmann/json.hpp"
#include "test_util.h"

using namespace rat;
using rat::testing::error_of;
using rat::testing::slurp;
using rat::testing::TempDir;

namespace {

void expect_windows(const std::vector<RollingWindow>& got, const std::vector<RollingWindow>& want) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t k = 0; k < want.size(); ++k) {
    EXPECT_EQ(got[k].begin, want[k].begin) << "window " << k;
    EXPECT_EQ(got[k].len, want[k].len) << "window " << k;
    EXPECT_EQ(got[k].first, want[k].first) << "window " << k;
  }
}

// Worked by hand from the definition: z = [eod, x_0 .. x_{n-1}], window k
// ends at label e_k = min(T + kS, n) and holds z[e_k - len, e_k), scoring
// the labels after e_{k-1}.
TEST(RollingWindows, HandWorkedPlans) {
  // n 10, T 4, S 2: labels 1-4, then 5-6, 7-8, 9-10, each window of 4 inputs.
  expect_windows(rolling_windows(10, 4, 2), {{0, 4, 0}, {2, 4, 2}, {4, 4, 2}, {6, 4, 2}});
  // n 11, T 4, S 3: labels 1-4, 5-7, 8-10, then 11 alone; the last window is
  // moved back (inputs z[7..10]) rather than starting at 9 with 2 tokens.
  expect_windows(rolling_windows(11, 4, 3), {{0, 4, 0}, {3, 4, 1}, {6, 4, 1}, {7, 4, 3}});
  // S == T: lm-eval's disjoint windows.
  expect_windows(rolling_windows(8, 4, 4), {{0, 4, 0}, {4, 4, 0}});
  expect_windows(rolling_windows(9, 4, 4), {{0, 4, 0}, {4, 4, 0}, {5, 4, 3}});
  // Shorter than a window: one window of n tokens.
  expect_windows(rolling_windows(3, 8, 4), {{0, 3, 0}});
  expect_windows(rolling_windows(4, 4, 1), {{0, 4, 0}});
  expect_windows(rolling_windows(1, 1, 1), {{0, 1, 0}});
  // T 1: every token is predicted from the one before it alone.
  expect_windows(rolling_windows(3, 1, 1), {{0, 1, 0}, {1, 1, 0}, {2, 1, 0}});
}

TEST(RollingWindows, EveryTokenOnceWithAtLeastTMinusSContext) {
  for (int64_t n : {1, 2, 7, 16, 17, 50})
    for (int64_t T : {1, 2, 5, 16})
      for (int64_t S = 1; S <= T; ++S) {
        std::vector<int> seen(size_t(n + 1), 0);
        const auto w = rolling_windows(n, T, S);
        for (size_t k = 0; k < w.size(); ++k) {
          EXPECT_EQ(w[k].len, std::min(T, n));
          EXPECT_GE(w[k].begin, 0);
          EXPECT_LE(w[k].begin + w[k].len, n);  // the last input is z[n - 1]
          if (k > 0) {
            EXPECT_GE(w[k].first, T - S) << n << " " << T << " " << S;
          }
          for (int64_t p = w[k].first; p < w[k].len; ++p) ++seen[size_t(w[k].begin + p + 1)];
        }
        for (int64_t j = 1; j <= n; ++j)
          EXPECT_EQ(seen[size_t(j)], 1) << "label " << j << " n " << n << " T " << T << " S " << S;
      }
}

TEST(RollingWindows, BadFlagsAreNamed) {
  EXPECT_NE(error_of([] { rolling_windows(10, 4, 5); }).find("--stride 5: expected 1 <= S <="),
            std::string::npos);
  EXPECT_NE(error_of([] { rolling_windows(10, 4, 0); }).find("--stride 0"), std::string::npos);
  EXPECT_NE(error_of([] { rolling_windows(10, 0, 1); }).find("--seq-len 0"), std::string::npos);
  EXPECT_NE(error_of([] { rolling_windows(0, 4, 2); }).find("no tokens"), std::string::npos);
}

bool have_torch() {
  return std::system("/usr/bin/python3 -c 'import torch, yaml' >/dev/null 2>&1") == 0;
}

void expect_rel(double got, double want, double tol, const std::string& what) {
  EXPECT_TRUE(std::isfinite(got)) << what;
  EXPECT_LE(std::fabs(got - want), tol * std::fabs(want))
      << what << ": got " << got << " want " << want;
}

TEST(RollingOracle, EveryMixerAndHybridMatchesFloat64Torch) {
  if (!have_torch()) GTEST_SKIP() << "/usr/bin/python3 with torch and PyYAML not available";
  TempDir dir;
  const std::string cmd = "/usr/bin/python3 " RAT_PYTHON_DIR
                          "/eval_oracle.py rolling-cases --out " +
                          dir.path() + " >/dev/null";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  int cases = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir.path())) {
    const std::string name = entry.path().filename().string();
    auto model = load_model_dir((entry.path() / "model").string());
    const auto runs =
        nlohmann::json::parse(slurp((entry.path() / "rolling.json").string()))["runs"];
    ASSERT_EQ(runs.size(), 4u) << name;
    for (const auto& run : runs) {
      const std::vector<int32_t> ids = run["ids"].get<std::vector<int32_t>>();
      const int64_t T = run["T"], S = run["S"], bytes = run["bytes"];
      const std::string what = name + " n " + std::to_string(ids.size()) + " T " +
                               std::to_string(T) + " S " + std::to_string(S);
      // Batches of 1, of 3 (a partial last batch) and of all windows at once.
      for (int64_t B : {1, 3, 64}) {
        const RollingResult r =
            rolling_perplexity(*model, ids, run["eod"].get<int32_t>(), bytes, T, S, B);
        EXPECT_EQ(r.tokens, run["tokens"].get<int64_t>()) << what;
        EXPECT_EQ(r.windows, run["windows"].get<int64_t>()) << what;
        EXPECT_EQ(r.bytes, bytes);
        expect_rel(r.nll, run["nll"], 1e-5, what + " nll");
        expect_rel(r.ppl(), run["ppl"], 1e-5, what + " ppl");
        expect_rel(r.bpb(), run["bpb"], 1e-5, what + " bpb");
        if (run["mean_nll_stderr"].is_null()) {
          EXPECT_TRUE(std::isnan(r.mean_nll_stderr())) << what;
        } else {
          expect_rel(r.mean_nll_stderr(), run["mean_nll_stderr"], 1e-5, what + " stderr");
          expect_rel(r.ppl_stderr(), run["ppl_stderr"], 1e-5, what + " ppl stderr");
          expect_rel(r.bpb_stderr(), run["bpb_stderr"], 1e-5, what + " bpb stderr");
        }
      }
    }
    ++cases;
  }
  EXPECT_GE(cases, 17) << "one case per tests/python/cases/*.yaml";
}

TEST(RollingOracle, IdsOutsideTheModelAreNamed) {
  ModelConfig c;
  c.seq_len = 8;
  c.vocab_size = 16;
  c.num_layers = 1;
  c.d_model = 16;
  c.seq_cell.kind = MixerKind::kRnn;
  c.seq_cell.d_head = 16;
  c.ffn.d_ffn = 16;
  c.pe = PosEnc::kEmpty;
  c.resolve("test");
  Model m(c);
  m.init(1);
  const std::vector<int32_t> ids = {1, 2, 16, 3};
  EXPECT_NE(error_of([&] {
              rolling_perplexity(m, ids, 0, 4, 8, 4, 1);
            }).find("text token 2 16 is not an id of the model (vocab_size 16)"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              rolling_perplexity(m, std::vector<int32_t>{1}, -1, 4, 8, 4, 1);
            }).find("end-of-document id -1"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              rolling_perplexity(m, std::vector<int32_t>{1}, 0, 4, 8, 4, 0);
            }).find("--batch-size 0"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              rolling_perplexity(m, std::vector<int32_t>{1}, 0, 0, 8, 4, 1);
            }).find("no bytes"),
            std::string::npos);
}

}  // namespace
