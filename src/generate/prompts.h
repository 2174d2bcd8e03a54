// Prompts as `rat generate` takes them on its command line, parsed apart from
// the model and tokenizer so that the rules and their messages are tested.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace rat {

// --prompt-ids: token ids separated by spaces, tabs, commas or newlines; ';'
// separates prompts ("1 2 3; 4 5" is a batch of two). Throws rat::Error
// naming the flag and the offending text for a token that is not a decimal
// integer, an id outside [0, 2^31), or a prompt with no ids.
std::vector<std::vector<int32_t>> parse_prompt_ids(std::string_view text);

// --batch-file: one prompt per line; empty lines are skipped and a line's
// '\r' (a file saved with CRLF endings) is not part of its prompt. Throws
// rat::Error naming `path` if no prompt is left.
std::vector<std::string> parse_batch_prompts(std::string_view text, const std::string& path);

// Every id must index the model's embedding: throws rat::Error naming the id,
// vocab_size and `config_path` (where vocab_size comes from) otherwise.
void check_prompt_ids(const std::vector<std::vector<int32_t>>& prompts, int64_t vocab_size,
                      const std::string& config_path);

}  // namespace rat
