// generate/stop_filter: stop strings over streamed text pieces.
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "generate/stop_filter.h"

using rat::StopFilter;

namespace {

// What each feed() returned, then finish() as the last entry.
std::vector<std::string> run(const std::vector<std::string>& stops,
                             const std::vector<std::string>& pieces) {
  StopFilter f(stops);
  std::vector<std::string> out;
  for (const std::string& p : pieces) out.push_back(f.feed(p));
  out.push_back(f.finish());
  return out;
}

std::string joined(const std::vector<std::string>& parts) {
  std::string s;
  for (const std::string& p : parts) s += p;
  return s;
}

// The definition, written out independently of the filter: the text shown is
// everything before the stop string that is complete after the fewest bytes
// (the longest one if several end at that byte), or all of it.
std::string shown_before_stop(const std::string& text, const std::vector<std::string>& stops) {
  for (size_t end = 1; end <= text.size(); ++end) {
    size_t longest = 0;
    for (const std::string& s : stops)
      if (!s.empty() && s.size() <= end && text.substr(end - s.size(), s.size()) == s)
        longest = std::max(longest, s.size());
    if (longest > 0) return text.substr(0, end - longest);
  }
  return text;
}

}  // namespace

TEST(StopFilter, NoStopStringPassesEveryPieceThrough) {
  EXPECT_EQ(run({}, {"Hello", " wor", "ld"}),
            (std::vector<std::string>{"Hello", " wor", "ld", ""}));
  // Empty stop strings (`--stop ""`) are no stop strings.
  EXPECT_EQ(run({""}, {"a", "b"}), (std::vector<std::string>{"a", "b", ""}));
  StopFilter f({"END"});
  EXPECT_EQ(f.feed("no end here"), "no end here");
  EXPECT_FALSE(f.hit());
}

TEST(StopFilter, StopSplitAcrossPiecesIsHeldBackAndNeverShown) {
  StopFilter f({"</s>"});
  EXPECT_EQ(f.feed("Hello <"), "Hello ");  // '<' may start the stop string
  EXPECT_EQ(f.feed("/"), "");
  EXPECT_EQ(f.feed("s"), "");
  EXPECT_FALSE(f.hit());
  EXPECT_EQ(f.feed("> world"), "");  // complete: neither it nor what follows is shown
  EXPECT_TRUE(f.hit());
  EXPECT_EQ(f.feed("more"), "");
  EXPECT_EQ(f.finish(), "");
}

TEST(StopFilter, FalseStartIsReleasedOnceItCannotBeTheStop) {
  EXPECT_EQ(run({"END"}, {"the E", "N", "d of it"}),
            (std::vector<std::string>{"the ", "", "ENd of it", ""}));
  // The stream ends while a possible start is held: finish() gives it back.
  EXPECT_EQ(run({"END"}, {"ab", "EN"}), (std::vector<std::string>{"ab", "", "EN"}));
}

TEST(StopFilter, StopAtTheVeryStart) {
  EXPECT_EQ(run({"STOP"}, {"STOP and more"}), (std::vector<std::string>{"", ""}));
  EXPECT_EQ(run({"STOP"}, {"S", "TOP", "x"}), (std::vector<std::string>{"", "", "", ""}));
  StopFilter f({"\n"});
  EXPECT_EQ(f.feed("\nrest"), "");
  EXPECT_TRUE(f.hit());
}

// The stop string overlaps itself: after "aa" + "a" the match must restart
// one byte later, not be abandoned ("aaab" holds "aab").
TEST(StopFilter, SelfOverlappingPrefixes) {
  EXPECT_EQ(run({"aab"}, {"a", "a", "a", "b", "c"}),
            (std::vector<std::string>{"", "", "a", "", "", ""}));
  EXPECT_EQ(run({"abab"}, {"xab", "a", "c"}), (std::vector<std::string>{"x", "", "abac", ""}));
  EXPECT_EQ(run({"abab"}, {"xab", "ab", "ab"}), (std::vector<std::string>{"x", "", "", ""}));
}

TEST(StopFilter, SeveralStopStringsSharingAPrefix) {
  const std::vector<std::string> stops = {"\n\n", "\nUser:"};
  EXPECT_EQ(run(stops, {"Hi", "\nUs", "er: what"}), (std::vector<std::string>{"Hi", "", "", ""}));
  EXPECT_EQ(run(stops, {"Hi\n", "\n", "x"}), (std::vector<std::string>{"Hi", "", "", ""}));
  EXPECT_EQ(run(stops, {"Hi\nU", "n"}), (std::vector<std::string>{"Hi", "\nUn", ""}));
  // The stop string that completes first wins, whatever the pieces: "y" is
  // complete one byte before "xyz" would be.
  EXPECT_EQ(joined(run({"xyz", "y"}, {"xyz"})), "x");
  EXPECT_EQ(joined(run({"xyz", "y"}, {"x", "y", "z"})), "x");
  // Both complete at the same byte: the longer one (it started earlier) is cut.
  EXPECT_EQ(joined(run({"yz", "xyz"}, {"wxyz"})), "w");
}

TEST(StopFilter, UnicodeIsMatchedAndNeverSplitWhereThePiecesKeptItWhole) {
  // A stop string of a two-byte character, its bytes arriving apart.
  const std::string second_byte_then_e = std::string("\x9F") + "e";
  EXPECT_EQ(run({"ß"}, {"Stra", "\xC3", second_byte_then_e}),
            (std::vector<std::string>{"Stra", "", "", ""}));
  // "è" shares its first byte with the stop string "é": released whole.
  EXPECT_EQ(run({"é"}, {"caf", "è", "s"}), (std::vector<std::string>{"caf", "è", "s", ""}));
  // A held-back character that turns out not to start "日本" is released whole.
  EXPECT_EQ(run({"日本"}, {"今", "日", "は"}), (std::vector<std::string>{"今", "", "日は", ""}));
  EXPECT_EQ(run({"日本"}, {"今日", "本語"}), (std::vector<std::string>{"今", "", ""}));
}

// Any way of cutting a text into pieces shows the same text, the one the
// definition gives (a small alphabet makes near misses and overlaps common).
TEST(StopFilter, OutputDoesNotDependOnHowTheTextIsCut) {
  std::mt19937 rng(5);
  const std::vector<std::vector<std::string>> stop_sets = {
      {"aba"}, {"aab", "ba"}, {"abc", "b", "cc"}, {"aaaa"}, {}};
  for (int trial = 0; trial < 2000; ++trial) {
    const auto& stops = stop_sets[size_t(trial) % stop_sets.size()];
    std::string text(size_t(rng() % 12), 'a');
    for (char& c : text) c = char('a' + rng() % 3);
    std::vector<std::string> pieces;
    for (size_t i = 0; i < text.size();) {
      const size_t n = std::min(text.size() - i, size_t(rng() % 4));  // empty pieces too
      pieces.push_back(text.substr(i, n));
      i += n;
    }
    EXPECT_EQ(joined(run(stops, pieces)), shown_before_stop(text, stops))
        << "text '" << text << "', " << pieces.size() << " pieces";
  }
}
