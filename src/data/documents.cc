#include "data/documents.h"

#include <fnmatch.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <set>
#include <sstream>

#include "nlohmann/json.hpp"
#include "util/error.h"

namespace rat {

namespace fs = std::filesystem;

namespace {

bool is_jsonl_name(const std::string& path) {
  std::string ext = fs::path(path).extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  return ext == ".jsonl" || ext == ".json";
}

bool hidden(const fs::path& p) {
  const std::string n = p.filename().string();
  return n.size() > 1 && n[0] == '.' && n != "..";
}

bool blank_line(std::string_view line) {
  return std::all_of(line.begin(), line.end(),
                     [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\f'; });
}

std::string where(const std::string& path, int64_t line) {
  const std::string name = path == "-" ? "<stdin>" : path;
  return line > 0 ? name + ":" + std::to_string(line) : name;
}

const char* json_kind(const nlohmann::json& j) {
  switch (j.type()) {
    case nlohmann::json::value_t::null: return "null";
    case nlohmann::json::value_t::boolean: return "a boolean";
    case nlohmann::json::value_t::string: return "a string";
    case nlohmann::json::value_t::array: return "an array";
    case nlohmann::json::value_t::object: return "an object";
    default: return "a number";
  }
}

// One record's text, or an error naming `at` and what was expected.
std::string_view record_text(const nlohmann::json& j, const std::string& key,
                             const std::string& at) {
  if (!j.is_object())
    throw Error(at + ": " + json_kind(j) + ", expected a JSON object with a \"" + key +
                "\" string");
  auto it = j.find(key);
  if (it == j.end()) {
    std::string keys;
    for (auto& [k, v] : j.items()) keys += (keys.empty() ? "\"" : ", \"") + k + "\"";
    throw Error(at + ": no \"" + key + "\" field (the record has " +
                (keys.empty() ? std::string("none") : keys) +
                "); name the field holding the text with --text-key");
  }
  if (!it->is_string())
    throw Error(at + ": \"" + key + "\" is " + json_kind(*it) + ", expected a string");
  return it->get_ref<const std::string&>();
}

}  // namespace

void split_at_blank_lines(std::string_view text,
                          const std::function<void(std::string_view, int64_t)>& on) {
  size_t start = std::string_view::npos, end = 0;  // the open document's bytes
  int64_t line = 0, first = 0;
  for (size_t i = 0; i < text.size();) {
    size_t j = text.find('\n', i);
    if (j == std::string_view::npos) j = text.size();
    ++line;
    if (blank_line(text.substr(i, j - i))) {
      if (start != std::string_view::npos) on(text.substr(start, end - start), first);
      start = std::string_view::npos;
    } else {
      if (start == std::string_view::npos) start = i, first = line;
      end = j;
    }
    i = j + 1;
  }
  if (start != std::string_view::npos) on(text.substr(start, end - start), first);
}

void split_at_separator(std::string_view text, std::string_view separator,
                        const std::function<void(std::string_view, int64_t)>& on) {
  int64_t line = 1;  // of text[pos]
  size_t pos = 0;
  auto is_nl = [](char c) { return c == '\n' || c == '\r'; };
  while (pos <= text.size()) {
    size_t hit = text.find(separator, pos);
    if (hit == std::string_view::npos) hit = text.size();
    size_t a = pos, b = hit;
    while (a < b && is_nl(text[a])) a++;
    while (b > a && is_nl(text[b - 1])) b--;
    const int64_t at = line + std::count(text.begin() + long(pos), text.begin() + long(a), '\n');
    if (b > a) on(text.substr(a, b - a), at);
    const size_t next = hit + separator.size();
    line += std::count(text.begin() + long(pos), text.begin() + long(std::min(next, text.size())),
                       '\n');
    if (hit == text.size()) break;
    pos = next;
  }
}

void read_json_records(std::string_view text, const std::string& name, const std::string& key,
                       const std::function<void(std::string_view, int64_t)>& on) {
  const size_t first = text.find_first_not_of(" \t\r\n");
  if (first != std::string_view::npos && text[first] == '[') {
    // A .json holding one array of records (pandas' to_json(orient="records")).
    nlohmann::json all;
    try {
      all = nlohmann::json::parse(text);
    } catch (const nlohmann::json::parse_error& e) {
      throw Error(name + ": not JSON (at byte " + std::to_string(e.byte) +
                  "), expected one JSON object per line or an array of objects");
    }
    for (size_t i = 0; i < all.size(); ++i)
      on(record_text(all[i], key, name + ": record " + std::to_string(i + 1)), 0);
    return;
  }
  int64_t line = 0;
  for (size_t i = 0; i < text.size();) {
    size_t j = text.find('\n', i);
    if (j == std::string_view::npos) j = text.size();
    ++line;
    const std::string_view l = text.substr(i, j - i);
    i = j + 1;
    if (blank_line(l)) continue;
    const std::string at = name + ":" + std::to_string(line);
    nlohmann::json rec;
    try {
      rec = nlohmann::json::parse(l);
    } catch (const nlohmann::json::parse_error& e) {
      throw Error(at + ": not JSON (at column " + std::to_string(e.byte) +
                  "), expected one object per line such as {\"" + key + "\": \"...\"}");
    }
    on(record_text(rec, key, at), line);
  }
}

DocumentReader::DocumentReader(const DocumentOptions& opt) : opt_(opt) {
  if (opt.inputs.empty()) throw Error("no input given: expected files, directories or - (stdin)");
  if (!opt.separator.empty() && opt.split == DocSplit::kFile)
    throw Error("--doc-separator splits files into documents, but --split file keeps them whole");
  std::set<std::string> seen;
  auto add = [&](const std::string& path, bool named) {
    if (!seen.insert(path).second) return;
    DocumentFile f;
    f.path = path;
    f.jsonl =
        opt.format == DocFormat::kJsonl || (opt.format == DocFormat::kAuto && is_jsonl_name(path));
    f.split = !f.jsonl && (!opt.separator.empty() || opt.split == DocSplit::kBlankLines ||
                           (opt.split == DocSplit::kAuto && named));
    files_.push_back(f);
  };
  bool stdin_read = false;
  for (const auto& in : opt.inputs) {
    if (in == "-") {
      if (stdin_read) throw Error("input - (stdin) given twice");
      std::ostringstream ss;
      ss << std::cin.rdbuf();
      stdin_ = ss.str();
      stdin_read = true;
      add(in, true);
      continue;
    }
    std::error_code ec;
    auto st = fs::status(in, ec);
    if (ec || !fs::exists(st)) throw Error("input " + in + ": no such file or directory");
    if (!fs::is_directory(st)) {
      add(in, true);  // a file named explicitly is read whatever its name
      continue;
    }
    std::set<std::string> found;  // sorted by path
    fs::recursive_directory_iterator it(in, ec), end;
    if (ec) throw Error("input " + in + ": cannot list (" + ec.message() + ")");
    for (; it != end; it.increment(ec)) {
      if (ec) throw Error("input " + in + ": cannot list (" + ec.message() + ")");
      if (hidden(it->path())) {  // .git, .complete markers, editor files
        if (it->is_directory(ec)) it.disable_recursion_pending();
        continue;
      }
      if (!it->is_regular_file(ec)) continue;
      const std::string name = it->path().filename().string();
      if (opt.glob.empty() || fnmatch(opt.glob.c_str(), name.c_str(), 0) == 0)
        found.insert(it->path().string());
    }
    if (ec) throw Error("input " + in + ": cannot list (" + ec.message() + ")");
    for (const auto& f : found) add(f, false);
  }
}

std::string DocumentReader::read(const DocumentFile& file) const {
  if (file.path == "-") return stdin_;
  std::ifstream in(file.path, std::ios::binary);
  if (!in) throw Error(file.path + ": cannot read (" + std::strerror(errno) + ")");
  std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) throw Error(file.path + ": read failed");
  return s;
}

void DocumentReader::for_each(
    const std::function<void(std::string_view, const std::string&)>& f) const {
  for (const DocumentFile& file : files_) {
    const std::string text = read(file);
    auto part = [&](std::string_view doc, int64_t line) { f(doc, where(file.path, line)); };
    if (file.jsonl)
      read_json_records(text, where(file.path, 0), opt_.text_key,
                        [&](std::string_view t, int64_t l) {
                          if (!t.empty()) part(t, l);
                        });
    else if (!file.split)
      f(text, where(file.path, 0));  // kept even when empty: one file, one document
    else if (!opt_.separator.empty())
      split_at_separator(text, opt_.separator, part);
    else
      split_at_blank_lines(text, part);
  }
}

}  // namespace rat
