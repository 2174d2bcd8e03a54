// Reading documents for `rat tokenize` (data/documents.h): blank-line and
// separator splitting, JSON lines with FILE:LINE errors, directories (sorted,
// hidden files skipped) versus named files. Expected values are written out by
// hand from the inputs.
#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

#include "data/documents.h"
#include "test_util.h"

namespace {

using rat::testing::error_of;
using rat::testing::TempDir;
using Docs = std::vector<std::pair<std::string, int64_t>>;  // text, first line

Docs blank(std::string_view text) {
  Docs d;
  rat::split_at_blank_lines(text, [&](std::string_view s, int64_t l) { d.emplace_back(s, l); });
  return d;
}

Docs sep(std::string_view text, std::string_view s) {
  Docs d;
  rat::split_at_separator(text, s, [&](std::string_view p, int64_t l) { d.emplace_back(p, l); });
  return d;
}

Docs json(std::string_view text, const std::string& key = "text") {
  Docs d;
  rat::read_json_records(text, "f.jsonl", key,
                         [&](std::string_view p, int64_t l) { d.emplace_back(p, l); });
  return d;
}

std::vector<std::string> read_all(const rat::DocumentOptions& o, std::vector<std::string>* where) {
  std::vector<std::string> out;
  rat::DocumentReader(o).for_each([&](std::string_view t, const std::string& w) {
    out.emplace_back(t);
    if (where) where->push_back(w);
  });
  return out;
}

TEST(Documents, BlankLinesSeparateDocuments) {
  EXPECT_EQ(blank("a\nb\n\nc\n"), (Docs{{"a\nb", 1}, {"c", 4}}));
  // Runs of blank lines, whitespace-only lines and CRLF count as one break;
  // leading and trailing blank lines make no empty document.
  EXPECT_EQ(blank("\n\n  one\r\n \t\r\n\n two\n\n"), (Docs{{"  one\r", 3}, {" two", 6}}));
  EXPECT_EQ(blank("no newline at end"), (Docs{{"no newline at end", 1}}));
  EXPECT_EQ(blank("\n \n"), Docs{});
}

TEST(Documents, SeparatorSplitsAnywhere) {
  EXPECT_EQ(sep("a\n<|endoftext|>\nb c<|endoftext|>d\n", "<|endoftext|>"),
            (Docs{{"a", 1}, {"b c", 3}, {"d", 3}}));
  // Empty parts (two separators in a row, one at the end) are skipped.
  EXPECT_EQ(sep("---\nx\n---\n---\ny\n---\n", "---"), (Docs{{"x", 2}, {"y", 5}}));
}

TEST(Documents, JsonLines) {
  EXPECT_EQ(json("{\"text\": \"one\\ntwo\", \"id\": 1}\n\n{\"text\": \"three\"}\n"),
            (Docs{{"one\ntwo", 1}, {"three", 3}}));
  EXPECT_EQ(json("{\"content\": \"x\"}", "content"), (Docs{{"x", 1}}));
  // A .json holding one array of records.
  EXPECT_EQ(json(" [{\"text\": \"a\"}, {\"text\": \"b\"}]"), (Docs{{"a", 0}, {"b", 0}}));
}

TEST(Documents, JsonLineErrorsNameFileLineAndWhatWasExpected) {
  // Column 13: just past the end of the 12-character line.
  EXPECT_EQ(error_of([] { json("{\"text\": \"a\"}\n{\"text\": \"b\"\n"); }),
            "f.jsonl:2: not JSON (at column 13), expected one object per line such as "
            "{\"text\": \"...\"}");
  EXPECT_EQ(error_of([] { json("{\"text\": \"a\"}\n{\"content\": \"b\", \"id\": 2}\n"); }),
            "f.jsonl:2: no \"text\" field (the record has \"content\", \"id\"); name the field "
            "holding the text with --text-key");
  EXPECT_EQ(error_of([] { json("{\"text\": 5}"); }),
            "f.jsonl:1: \"text\" is a number, expected a string");
  EXPECT_EQ(error_of([] { json("[1, 2]\n"); }),
            "f.jsonl: record 1: a number, expected a JSON object with a \"text\" string");
  EXPECT_EQ(error_of([] { json("\"just a string\"\n"); }),
            "f.jsonl:1: a string, expected a JSON object with a \"text\" string");
}

TEST(Documents, NamedFilesSplitDirectoryFilesWhole) {
  TempDir d;
  std::filesystem::create_directories(d.file("dir/sub"));
  std::filesystem::create_directories(d.file("dir/.git"));
  d.write("dir/b.txt", "b1\n\nb2\n");
  d.write("dir/sub/a.txt", "a\n");
  d.write("dir/.complete", "");
  d.write("dir/.git/HEAD", "ref");
  d.write("dir/c.jsonl", "{\"text\": \"c1\"}\n{\"text\": \"c2\"}\n");
  d.write("book.txt", "p1\n\np2 line 1\np2 line 2\n\n\np3\n");
  rat::DocumentOptions o;
  o.inputs = {d.file("book.txt"), d.file("dir")};
  std::vector<std::string> where;
  // The named file at blank lines; the directory's files sorted by path,
  // hidden ones skipped, a text file whole, a .jsonl file one per record.
  EXPECT_EQ(read_all(o, &where), (std::vector<std::string>{"p1", "p2 line 1\np2 line 2", "p3",
                                                           "b1\n\nb2\n", "c1", "c2", "a\n"}));
  EXPECT_EQ(where[2], d.file("book.txt") + ":7");
  EXPECT_EQ(where[3], d.file("dir/b.txt"));
  EXPECT_EQ(where[5], d.file("dir/c.jsonl") + ":2");

  o.glob = "*.txt";
  o.split = rat::DocSplit::kFile;
  o.inputs = {d.file("dir"), d.file("book.txt")};
  EXPECT_EQ(
      read_all(o, nullptr),
      (std::vector<std::string>{"b1\n\nb2\n", "a\n", rat::testing::slurp(d.file("book.txt"))}));
}

TEST(Documents, BadInputs) {
  TempDir d;
  rat::DocumentOptions o;
  o.inputs = {d.file("missing.txt")};
  EXPECT_EQ(error_of([&] { rat::DocumentReader r(o); }),
            "input " + d.file("missing.txt") + ": no such file or directory");
  o.inputs = {};
  EXPECT_HAS(error_of([&] { rat::DocumentReader r(o); }), "no input given");
  o.inputs = {d.write("x.txt", "a")};
  o.separator = "--";
  o.split = rat::DocSplit::kFile;
  EXPECT_HAS(error_of([&] { rat::DocumentReader r(o); }), "--split file");
  // --format jsonl reads any name as JSON lines.
  o = {};
  o.inputs = {d.write("records.txt", "{\"text\": \"r\"}\nnot json\n")};
  o.format = rat::DocFormat::kJsonl;
  EXPECT_EQ(error_of([&] { read_all(o, nullptr); }),
            d.file("records.txt") +
                ":2: not JSON (at column 2), expected one object per line such as "
                "{\"text\": \"...\"}");
}

}  // namespace
