// train/metrics_log: the records of metrics.jsonl.
#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <set>
#include <thread>

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
  auto got = records(tmp.file("metrics.jsonl"));
  ASSERT_EQ(got.size(), 5u);
  EXPECT_EQ(got[0]["loss"], 9);
  // begin(1): a resumed run marks where it continues.
  EXPECT_EQ(keys(got[1]), (std::set<std::string>{"resumed_at", "time", "elapsed"}));
  EXPECT_EQ(got[1]["resumed_at"], 1);
  got.erase(got.begin() + 1);
  for (size_t i = 1; i < got.size(); ++i) got[i].erase("time"), got[i].erase("elapsed");
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

double unix_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// Records carry wall time (Unix seconds) and seconds since the run began in
// this process; a fresh run (begin(0)) writes no resume marker.
TEST(MetricsLog, RecordsCarryWallTimeAndElapsedSeconds) {
  TempDir tmp;
  const double before = unix_now();
  {
    rat::MetricsLog log(tmp.path(), /*lead=*/true, /*quiet=*/true, /*json=*/false, 10);
    log.begin(0);
    rat::StepRecord r;
    r.step = 1;
    log.step(r);
    std::this_thread::sleep_for(std::chrono::milliseconds(120));
    r.step = 2;
    log.step(r);
  }
  const double after = unix_now();
  const auto got = records(tmp.file("metrics.jsonl"));
  ASSERT_EQ(got.size(), 2u);
  for (const auto& j : got) {
    ASSERT_TRUE(j.contains("time") && j.contains("elapsed")) << j.dump();
    EXPECT_GE(j["time"].get<double>(), before - 0.001);
    EXPECT_LE(j["time"].get<double>(), after + 0.001);
    EXPECT_GE(j["elapsed"].get<double>(), 0.0);
    EXPECT_LE(j["elapsed"].get<double>(), after - before + 0.001);
  }
  EXPECT_EQ(got[0]["step"], 1);
  EXPECT_GE(got[1]["elapsed"].get<double>() - got[0]["elapsed"].get<double>(), 0.1);
  EXPECT_GE(got[1]["time"].get<double>() - got[0]["time"].get<double>(), 0.1);
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
