#!/usr/bin/env python3
"""The sanitized parser run (scripts/sanitize_tests.sh) builds rat_parser_tests from a list of
files in tests/CMakeLists.txt and runs the gtest suites named by its filter. A suite of the
filter whose file is missing from the list would silently not run under the sanitizers: this
check fails then, naming the suite and the file.

    parser_tests_listed.py REPO_ROOT
"""
import fnmatch
import pathlib
import re
import sys

root = pathlib.Path(sys.argv[1])
script = (root / "scripts/sanitize_tests.sh").read_text()
m = re.search(r'RAT_SANITIZE_FILTER:-([^}"]+)\}', script)
if not m:
    sys.exit("parser_tests_listed: no RAT_SANITIZE_FILTER default in scripts/sanitize_tests.sh")
patterns = m.group(1).split(":")

cmake = (root / "tests/CMakeLists.txt").read_text()
m = re.search(r"set\(RAT_PARSER_TEST_SOURCES(.*?)\)", cmake, re.S)
if not m:
    sys.exit("parser_tests_listed: no RAT_PARSER_TEST_SOURCES in tests/CMakeLists.txt")
listed = set(m.group(1).split())
for f in listed:
    if not (root / "tests" / f).is_file():
        sys.exit(f"parser_tests_listed: tests/CMakeLists.txt lists {f}, which does not exist")

missing, matched = [], 0
for path in sorted((root / "tests/cpp").rglob("*.cc")):
    rel = str(path.relative_to(root / "tests"))
    for suite, name in re.findall(r"^TEST(?:_F|_P)?\((\w+),\s*(\w+)\)", path.read_text(), re.M):
        full = f"{suite}.{name}"
        if any(fnmatch.fnmatchcase(full, p) for p in patterns):
            matched += 1
            if rel not in listed:
                missing.append(f"{full} ({rel})")
if matched == 0:
    sys.exit("parser_tests_listed: the filter matches no test at all")
if missing:
    sys.exit("parser_tests_listed: suites of the sanitizer filter in files missing from "
             "RAT_PARSER_TEST_SOURCES: " + ", ".join(missing))
print(f"parser_tests_listed: {matched} tests of the filter, all in the {len(listed)} listed files")
