// The documents `rat tokenize` reads, from whatever a user has: files,
// directories of files, stdin, one big text file (split at blank lines or at a
// separator) and JSON lines (one record per line, the text under a key; what
// Hugging Face datasets' to_json writes). A document is the unit the token
// files end with the end-of-document id and the val split holds out whole.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace rat {

enum class DocFormat { kAuto, kText, kJsonl };  // auto: .jsonl / .json are JSON lines
// How a text file becomes documents. auto: a file named as an input (or
// stdin) is split at blank lines, a file found in a directory is one document.
enum class DocSplit { kAuto, kFile, kBlankLines };

struct DocumentOptions {
  std::vector<std::string> inputs;  // files, directories (recursive), "-" for stdin
  std::string glob;                 // names of files found in directories; empty: all
  DocFormat format = DocFormat::kAuto;
  std::string text_key = "text";  // JSON lines: the field holding the text
  DocSplit split = DocSplit::kAuto;
  std::string separator;  // non-empty: text files are split at each occurrence
};

// One input file and how it is read. path "-" is stdin.
struct DocumentFile {
  std::string path;
  bool jsonl = false;
  bool split = false;  // text: split into documents (at blank lines or the separator)
};

// Lists the inputs at construction (checking each exists; stdin is read once
// here, so the documents can be walked several times); for_each() then reads
// the files in order. Every error is a rat::Error naming the input, or
// FILE:LINE and what was expected for a bad JSON line.
class DocumentReader {
 public:
  explicit DocumentReader(const DocumentOptions& opt);

  const std::vector<DocumentFile>& files() const { return files_; }

  // Calls f(text, where) for every non-empty document, in order; `where` is
  // "FILE:LINE" of its first line ("FILE" for a whole file).
  void for_each(
      const std::function<void(std::string_view text, const std::string& where)>& f) const;

 private:
  std::string read(const DocumentFile& file) const;
  DocumentOptions opt_;
  std::vector<DocumentFile> files_;
  std::string stdin_;
};

// The parts of `text` between runs of blank (empty or whitespace-only)
// lines, each without its final newline; `on(part, first line number)`.
void split_at_blank_lines(std::string_view text,
                          const std::function<void(std::string_view, int64_t)>& on);
// The parts of `text` between occurrences of `separator`, each without
// leading and trailing newlines, empty ones skipped; `on(part, line number)`.
void split_at_separator(std::string_view text, std::string_view separator,
                        const std::function<void(std::string_view, int64_t)>& on);

// The texts of a JSON-lines file (or a .json holding one array of records):
// the string under `key` of each record, with its line number. Throws
// rat::Error "NAME:LINE: ..." for a line that is not a JSON object with a
// string at `key`.
void read_json_records(std::string_view text, const std::string& name, const std::string& key,
                       const std::function<void(std::string_view, int64_t)>& on);

}  // namespace rat
