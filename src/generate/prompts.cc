#include "generate/prompts.h"

#include <charconv>
#include <limits>

#include "util/error.h"

namespace rat {

namespace {

int32_t parse_id(std::string_view tok) {
  int64_t v = 0;
  const auto [end, ec] = std::from_chars(tok.data(), tok.data() + tok.size(), v);
  const bool integer =
      end == tok.data() + tok.size() && (ec == std::errc() || ec == std::errc::result_out_of_range);
  if (!integer)
    throw Error("--prompt-ids: '" + std::string(tok) +
                "' is not a token id, expected non-negative integers separated by spaces (';' "
                "between prompts)");
  if (ec == std::errc::result_out_of_range || v < 0 || v > std::numeric_limits<int32_t>::max())
    throw Error("--prompt-ids: '" + std::string(tok) +
                "' is out of range, expected ids from 0 to " +
                std::to_string(std::numeric_limits<int32_t>::max()));
  return int32_t(v);
}

}  // namespace

std::vector<std::vector<int32_t>> parse_prompt_ids(std::string_view text) {
  std::vector<std::vector<int32_t>> out(1);
  size_t begin = 0;  // of the token being read
  for (size_t i = 0; i <= text.size(); ++i) {
    const char c = i < text.size() ? text[i] : ';';
    if (c != ';' && c != ' ' && c != '\t' && c != ',' && c != '\n' && c != '\r') continue;
    if (i > begin) out.back().push_back(parse_id(text.substr(begin, i - begin)));
    begin = i + 1;
    if (c == ';' && i < text.size()) out.emplace_back();
  }
  for (size_t p = 0; p < out.size(); ++p)
    if (out[p].empty())
      throw Error("--prompt-ids: prompt " + std::to_string(p + 1) + " of " +
                  std::to_string(out.size()) +
                  " has no ids, expected at least one id before, between and after ';'");
  return out;
}

std::vector<std::string> parse_batch_prompts(std::string_view text, const std::string& path) {
  std::vector<std::string> out;
  size_t begin = 0;
  while (begin < text.size()) {
    size_t end = text.find('\n', begin);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(begin, end - begin);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (!line.empty()) out.emplace_back(line);
    begin = end + 1;
  }
  if (out.empty())
    throw Error("--batch-file: " + path + " has no prompt line, expected one prompt per line");
  return out;
}

void check_prompt_ids(const std::vector<std::vector<int32_t>>& prompts, int64_t vocab_size,
                      const std::string& config_path) {
  for (const auto& p : prompts)
    for (int32_t id : p)
      if (id >= vocab_size)
        throw Error("prompt token id " + std::to_string(id) +
                    " is not below the model's vocab_size " + std::to_string(vocab_size) + " (" +
                    config_path + ")");
}

}  // namespace rat
