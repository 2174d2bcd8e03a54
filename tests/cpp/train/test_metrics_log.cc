// train/metrics_log: the records of metrics.jsonl.
#include <gtest/gtest.h>

#include <fstream>
#include <set>

#include "nlohmann/json.hpp"
#include "test_util.h"
#include "train/metrics_log.h"

using rat::testing::TempDir;

namespace {

std::vector<nlohmann::json> records(const std::string& path) {
  std::vector<nlohmann::json> out;
  std::ifstream f(path);
  for (std::string line; std::getline(f, line);) out.push_back(nlohmann::json::parse(line));
  return out;
}

std::set<std::string> keys(const nlohmann::json& j) {
  std::set<std::string> k;
  for (const auto& [key, v] : j.items()) k.insert(key);
  return k;
}

}  // namespace

TEST(MetricsLog, RecordsAreAppendedWithTheirFields) {
  TempDir tmp;
  std::ofstream(tmp.file("metrics.jsonl")) << "{\"step\": 1, \"loss\": 9}\n";  // an earlier run's
  {
    rat::MetricsLog log(tmp.path(), /*lead=*/true, /*quiet=*/true, /*json=*/false, 10);
    log.begin(1);
    rat::StepRecord r;
    r.step = 2, r.loss = 3.5, r.lr = 1e-3, r.grad_norm = 0.25;
    r.tokens_per_s = 1000, r.mfu = 0.5, r.data_fraction = 0.125;
    log.step(r);
    r.step = 3, r.distributed = true, r.comm_wait_s = 0.01, r.comm_fraction = 0.2;
    log.step(r);
    rat::EvalResult v;
    v.loss = 2.0, v.ppl = 7.389, v.tokens = 96, v.samples = 4;
    log.validation(3, v);
  }
  const auto got = records(tmp.file("metrics.jsonl"));
  ASSERT_EQ(got.size(), 4u);
  EXPECT_EQ(got[0]["loss"], 9);
  const std::set<std::string> step_keys = {"step",         "loss", "lr",           "grad_norm",
                                           "tokens_per_s", "mfu",  "data_fraction"};
  EXPECT_EQ(keys(got[1]), step_keys);
  EXPECT_EQ(got[1]["step"], 2);
  EXPECT_EQ(got[1]["loss"], 3.5);
  EXPECT_EQ(got[1]["data_fraction"], 0.125);
  std::set<std::string> with_comm = step_keys;
  with_comm.insert({"comm_wait_s", "comm_fraction"});
  EXPECT_EQ(keys(got[2]), with_comm);
  EXPECT_EQ(got[2]["comm_fraction"], 0.2);
  EXPECT_EQ(got[3], (nlohmann::json{
                        {"step", 3}, {"val_loss", 2.0}, {"val_ppl", 7.389}, {"val_tokens", 96}}));
}

TEST(MetricsLog, OnlyTheLeadRankWrites) {
  TempDir tmp;
  {
    rat::MetricsLog log(tmp.path(), /*lead=*/false, /*quiet=*/false, /*json=*/false, 10);
    log.begin(0);
    log.step(rat::StepRecord{});
  }
  EXPECT_FALSE(std::filesystem::exists(tmp.file("metrics.jsonl")));
}
