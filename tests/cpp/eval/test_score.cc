// Log-likelihood requests (src/eval/score.h) and the slot copy they decode
// from (DecodeState::copy_slot): lm-eval's pair encoding on a hand-made
// encoder, left truncation and grouping on hand-computed cases, every
// malformed line, and the scores against a full forward of the same tokens.
// The float64 oracle check on the golden models is CTest score_vs_oracle.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "eval/score.h"
#include "model/model.h"
#include "test_util.h"

namespace rat {
namespace {

using rat::testing::error_of;
using rat::testing::TempDir;

// A toy encoder with sentencepiece's habit that makes the pair rule matter:
// a space glues to the letter after it (" c" is one token, 100 + 'c'); other
// bytes are their own ids; "ab" is one token (300).
std::vector<int32_t> toy_encode(std::string_view s) {
  std::vector<int32_t> out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == ' ' && i + 1 < s.size() && s[i + 1] >= 'a' && s[i + 1] <= 'z') {
      out.push_back(100 + s[++i]);
    } else if (s[i] == 'a' && i + 1 < s.size() && s[i + 1] == 'b') {
      out.push_back(300), ++i;
    } else {
      out.push_back(uint8_t(s[i]));
    }
  }
  return out;
}

using Ids = std::vector<int32_t>;

TEST(Score, RstripIsPythonsIsspace) {
  EXPECT_EQ(rstrip_length("ab \t\n"), 2u);
  EXPECT_EQ(rstrip_length("ab\x1f\x0b"), 2u);        // Python counts \x1c-\x1f and \v
  EXPECT_EQ(rstrip_length("ab\xc2\xa0"), 2u);        // U+00A0
  EXPECT_EQ(rstrip_length("ab \xe3\x80\x80 "), 2u);  // U+3000
  EXPECT_EQ(rstrip_length("caf\xc3\xa9 "), 5u);      // é is no space
  EXPECT_EQ(rstrip_length("   "), 0u);
  EXPECT_EQ(rstrip_length("x\xa0"), 2u);  // a stray continuation byte is not a space
}

TEST(Score, EncodePairMovesTrailingWhitespace) {
  // "xy " + "c": lm-eval scores " c" after "xy": whole = encode("xy c") = [x, y, 'c'+100].
  ScoreRequest r = encode_pair(toy_encode, "xy ", "c", 7);
  EXPECT_EQ(r.context, (Ids{'x', 'y'}));
  EXPECT_EQ(r.continuation, (Ids{100 + 'c'}));
  // Without the move it would have been [x, y, ' '] then ['c'].
  r = encode_pair(toy_encode, "xy", " c d", 7);
  EXPECT_EQ(r.continuation, (Ids{100 + 'c', 100 + 'd'}));
  // The continuation is whole[len(encode(context)):], even when a token spans
  // the boundary: "xa" + "b" -> whole [x, 300], context [x, a]: nothing left.
  r = encode_pair(toy_encode, "xa", "bc", 7);
  EXPECT_EQ(r.context, (Ids{'x', 'a'}));
  EXPECT_EQ(r.continuation, (Ids{'c'}));
}

TEST(Score, EmptyContextIsTheEndOfDocumentId) {
  ScoreRequest r = encode_pair(toy_encode, "", "ab c", 7);
  EXPECT_EQ(r.context, (Ids{7}));
  EXPECT_EQ(r.continuation, (Ids{300, 100 + 'c'}));
  // Whitespace only: empty once moved; the whitespace goes with the continuation.
  r = encode_pair(toy_encode, " ", "c", 7);
  EXPECT_EQ(r.context, (Ids{7}));
  EXPECT_EQ(r.continuation, (Ids{100 + 'c'}));
  EXPECT_NE(error_of([] { encode_pair(toy_encode, "", "c", -1); }).find("end-of-document"),
            std::string::npos);
}

TEST(Score, CutContextKeepsTheLastTokens) {
  ScoreRequest r{{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, {11, 12, 13}};
  // T = 8: whole = last 9 of 13 tokens = [5 .. 13]; the context part is [5 .. 10].
  EXPECT_EQ(cut_context(r, 8), (Ids{5, 6, 7, 8, 9, 10}));
  EXPECT_EQ(cut_context(r, 12), r.context);  // 13 = T + 1 tokens: nothing cut
  EXPECT_EQ(cut_context(r, 100), r.context);
  EXPECT_EQ(cut_context(r, 3), (Ids{10}));  // a continuation of T tokens keeps one
}

TEST(Score, GroupsByCutContextInOrderOfFirstUse) {
  std::vector<ScoreRequest> reqs = {
      {{1, 2, 3}, {4}},        // 0: keeps T + 1 - 1 = 3: [1, 2, 3]
      {{9, 9, 2, 3}, {4}},     // 1: [9, 2, 3]
      {{1, 2, 3}, {5, 6}},     // 2: keeps 2: [2, 3]
      {{1, 2, 3}, {7}},        // 3: [1, 2, 3] again, not adjacent
      {{8, 1, 2, 3}, {4, 4}},  // 4: [2, 3]
  };
  const auto g = group_by_context(reqs, 3);
  ASSERT_EQ(g.size(), 3u);
  EXPECT_EQ(g[0], (std::vector<int64_t>{0, 3}));
  EXPECT_EQ(g[1], (std::vector<int64_t>{1}));
  EXPECT_EQ(g[2], (std::vector<int64_t>{2, 4}));
}

// ---------------------------------------------------------------------------
// Request files.

ScoreVocab ids_vocab() {
  ScoreVocab v;
  v.vocab_size = 50;
  v.eod = 0;
  v.no_tokenizer = "m/tokenizer.model does not exist";
  return v;
}

TEST(Score, ReadsBothFormsSkipsBlankLines) {
  TempDir d;
  ScoreVocab v = ids_vocab();
  v.encode = [](std::string_view s) {
    Ids out;
    for (char c : s) out.push_back(int32_t(uint8_t(c)) % 50);
    return out;
  };
  const std::string p = d.write("r.jsonl",
                                "{\"context_ids\": [1, 2], \"continuation_ids\": [3]}\n\n"
                                "{\"context\": \"ab\", \"continuation\": \"c\"}\r\n"
                                "{\"context_ids\": [], \"continuation_ids\": [4, 5]}\n");
  auto reqs = read_score_requests(p, v, 8);
  ASSERT_EQ(reqs.size(), 3u);
  EXPECT_EQ(reqs[0].context, (Ids{1, 2}));
  EXPECT_EQ(reqs[1].context, (Ids{'a' % 50, 'b' % 50}));
  EXPECT_EQ(reqs[1].continuation, (Ids{'c' % 50}));
  EXPECT_EQ(reqs[2].context, (Ids{0}));  // empty: the end-of-document id
}

TEST(Score, MalformedLinesNameFileLineAndWhatWasExpected) {
  TempDir d;
  const ScoreVocab v = ids_vocab();
  struct Bad {
    std::string line, want;
  };
  const std::vector<Bad> bad = {
      {"{\"context_ids\": [1], \"continuation_ids\": [2]", "not valid JSON"},
      {"[1, 2]", "not a JSON object"},
      {"{\"context\": \"a\", \"continuation_ids\": [2]}", "mixes text keys and _ids keys"},
      {"{\"foo\": 1}", "has no continuation"},
      {"{\"continuation_ids\": [2]}", "\"context_ids\" is missing"},
      {"{\"context_ids\": 3, \"continuation_ids\": [2]}", "\"context_ids\" is not a list"},
      {"{\"context_ids\": [1], \"continuation_ids\": [2.5]}",
       "\"continuation_ids\"[0] = 2.5 is not an integer"},
      {"{\"context_ids\": [1], \"continuation_ids\": [\"7\"]}", "is not an integer"},
      {"{\"context_ids\": [-1], \"continuation_ids\": [2]}",
       "\"context_ids\"[0] = -1 is outside the model's vocabulary [0, 50)"},
      {"{\"context_ids\": [1], \"continuation_ids\": [2, 50]}",
       "\"continuation_ids\"[1] = 50 is outside the model's vocabulary"},
      {"{\"context_ids\": [1], \"continuation_ids\": [99999999999999999999]}", "not an integer"},
      {"{\"context_ids\": [1], \"continuation_ids\": [4294967297]}", "outside"},
      {"{\"context_ids\": [1], \"continuation_ids\": []}", "the continuation is empty"},
      {"{\"context_ids\": [1], \"continuation_ids\": [1,2,3,4,5,6,7,8,9]}",
       "the continuation has 9 tokens, more than the context of 8"},
      {"{\"context\": \"a\", \"continuation\": \"b\"}",
       "needs the model's tokenizer, but m/tokenizer.model does not exist"},
      {"{\"context\": 1, \"continuation\": \"b\"}", "\"context\" is not a string"},
      {"{\"context\": \"a\"}", "\"continuation\" is missing"},
  };
  for (const Bad& b : bad) {
    const std::string p = d.write("bad.jsonl",
                                  "{\"context_ids\": [1], \"continuation_ids\": [2]}\n"
                                  "\n" +
                                      b.line + "\n");
    const std::string msg = error_of([&] { read_score_requests(p, v, 8); });
    EXPECT_NE(msg.find(p + ":3: "), std::string::npos) << b.line << " -> " << msg;
    EXPECT_NE(msg.find(b.want), std::string::npos) << b.line << " -> " << msg;
  }
  ScoreVocab no_eod = v;
  no_eod.eod = -1;
  const std::string p = d.write("e.jsonl", "{\"context_ids\": [], \"continuation_ids\": [2]}\n");
  EXPECT_NE(error_of([&] { read_score_requests(p, no_eod, 8); }).find(p + ":1: an empty context"),
            std::string::npos);
  // A text-encoded id beyond the model's vocabulary: the tokenizer does not match.
  ScoreVocab big = v;
  big.encode = [](std::string_view s) {
    Ids out;
    for (char c : s) out.push_back(c == 'b' ? 60 : 1);
    return out;
  };
  const std::string q = d.write("t.jsonl", "{\"context\": \"a\", \"continuation\": \"b\"}\n");
  EXPECT_NE(error_of([&] { read_score_requests(q, big, 8); }).find("does not match the model"),
            std::string::npos);
  EXPECT_NE(
      error_of([&] { read_score_requests(d.write("n.jsonl", "\n \n"), v, 8); }).find("no requests"),
      std::string::npos);
  EXPECT_NE(
      error_of([&] { read_score_requests(d.file("missing.jsonl"), v, 8); }).find("cannot read"),
      std::string::npos);
}

// ---------------------------------------------------------------------------
// Decoding from copied slots, and the scores.

MixerConfig mixer(MixerKind kind, int64_t L = 4, int64_t W = 3) {
  MixerConfig m;
  m.kind = kind;
  m.d_head = 8;
  m.ngroups = kind == MixerKind::kRat ? 2 : 1;
  m.chunk_size = L;
  m.window_size = W;
  return m;
}

ModelConfig config(const MixerConfig& cell, const MixerConfig* cell1 = nullptr) {
  ModelConfig c;
  c.seq_len = 24;
  c.vocab_size = 37;
  c.num_layers = cell1 ? 3 : 2;
  c.d_model = 32;
  c.seq_cell = cell;
  if (cell1) {
    c.backbone = "sequence_interleave";
    c.interleave_step = 2;
    c.seq_cell1 = *cell1;
  }
  c.ffn.d_ffn = 64;
  c.pe = PosEnc::kRopeInterRope;
  c.resolve("test");
  return c;
}

// SPEC init with weights rescaled so each layer moves the logits by O(1).
std::unique_ptr<Model> model_of(const ModelConfig& cfg) {
  auto m = std::make_unique<Model>(cfg);
  m->init(3);
  for (const ParamSpec& s : m->layout().specs()) {
    if (s.shape.size() != 2) continue;
    const float k = s.name == "embedding.wte.weight" ? 0.25f / 0.02f
                                                     : (1.f / std::sqrt(float(s.shape[1]))) / 0.02f;
    for (int64_t i = 0; i < s.numel; ++i) m->params()[s.offset + i] *= k;
  }
  return m;
}

std::vector<std::pair<std::string, ModelConfig>> all_kinds() {
  const MixerConfig local = mixer(MixerKind::kLocalAttention);
  return {{"rat", config(mixer(MixerKind::kRat))},
          {"attention", config(mixer(MixerKind::kAttention))},
          {"local", config(local)},
          {"rnn", config(mixer(MixerKind::kRnn))},
          {"hybrid", config(mixer(MixerKind::kRat), &local)}};
}

TEST(Score, DecodingFromACopiedSlotEqualsTheOriginal) {
  for (const auto& [name, cfg] : all_kinds()) {
    auto model = model_of(cfg);
    const int64_t V = cfg.vocab_size, T = 20;
    const auto ids = rat::testing::random_ids(T, V, 9);
    for (int64_t p : {1, 4, 5, 8, 9, 13}) {  // around chunk ends (L = 4) and the ring (W = 3)
      auto st = model->make_decode_state(3, T);
      st->fill_random(p);  // the copy's target holds garbage until copied
      std::vector<float> a(static_cast<size_t>(V)), b(static_cast<size_t>(V));
      model->prefill(ids.data(), p, *st, 0, a.data());
      st->copy_slot(0, 2, p);
      for (int64_t t = p; t < p + 6; ++t) {
        const int64_t s0 = 0, s2 = 2;
        model->step(&ids[size_t(t)], &s0, &t, 1, *st, a.data());
        model->step(&ids[size_t(t)], &s2, &t, 1, *st, b.data());
        ASSERT_EQ(a, b) << name << " prompt " << p << " position " << t;
      }
    }
  }
}

// log p of each continuation token from one full forward over context +
// continuation (Model::logits, kScore): another path through the model than
// prefill + steps.
ScoreResult full_forward(Model& m, const ScoreRequest& r, int64_t T) {
  Ids whole = cut_context(r, T);
  const int64_t c = int64_t(whole.size());
  whole.insert(whole.end(), r.continuation.begin(), r.continuation.end() - 1);
  const int64_t n = int64_t(whole.size()), V = m.config().vocab_size;
  std::vector<float> lg(size_t(n * V));
  m.logits(whole.data(), 1, n, lg.data());
  ScoreResult out;
  out.is_greedy = true, out.tokens = int64_t(r.continuation.size());
  for (size_t k = 0; k < r.continuation.size(); ++k) {
    const float* row = lg.data() + (c - 1 + int64_t(k)) * V;
    double mx = row[0], sum = 0;
    int64_t best = 0;
    for (int64_t v = 1; v < V; ++v)
      if (row[v] > row[best]) best = v;
    mx = row[best];
    for (int64_t v = 0; v < V; ++v) sum += std::exp(double(row[v]) - mx);
    out.loglikelihood += row[r.continuation[k]] - mx - std::log(sum);
    out.is_greedy = out.is_greedy && best == r.continuation[k];
  }
  return out;
}

TEST(Score, EqualsAFullForwardSharesPrefillsAndBatches) {
  for (const auto& [name, cfg] : all_kinds()) {
    auto model = model_of(cfg);
    const int64_t V = cfg.vocab_size, T = 12;
    std::mt19937 rng(5);
    auto ids = [&](int64_t n) {
      Ids v(static_cast<size_t>(n));
      for (auto& x : v) x = int32_t(rng() % uint32_t(V));
      return v;
    };
    auto cat = [](Ids a, const Ids& b) {
      a.insert(a.end(), b.begin(), b.end());
      return a;
    };
    const Ids shared = ids(6), tail = ids(10), tail_cont = ids(3);
    std::vector<ScoreRequest> reqs = {
        {shared, ids(1)},
        {shared, ids(4)},
        {ids(2), ids(3)},
        {shared, ids(2)},
        {ids(15), ids(2)},  // cut from the left
        {ids(3), ids(T)},   // a continuation of T tokens keeps one context token
        {shared, ids(5)},
        // Differ only in what is cut off (T + 1 - 3 = 10 context tokens kept): one prefill.
        {cat(ids(4), tail), tail_cont},
        {cat(ids(7), tail), tail_cont},
    };
    for (int64_t batch : {1, 2, 8}) {
      ScoreStats s;
      auto got = score_requests(*model, reqs, T, batch, &s);
      ASSERT_EQ(got.size(), reqs.size());
      EXPECT_EQ(s.groups, int64_t(group_by_context(reqs, T).size()));
      EXPECT_EQ(s.groups, 5) << name;  // shared x4, three single contexts, the two tails as one
      for (size_t i = 0; i < reqs.size(); ++i) {
        const ScoreResult want = full_forward(*model, reqs[i], T);
        EXPECT_NEAR(got[i].loglikelihood, want.loglikelihood, 1e-5 * std::fabs(want.loglikelihood))
            << name << " request " << i << " batch " << batch;
        EXPECT_EQ(got[i].tokens, want.tokens);
        EXPECT_EQ(got[i].is_greedy, want.is_greedy) << name << " request " << i;
      }
    }
  }
}

}  // namespace
}  // namespace rat
