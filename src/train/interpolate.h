// OmegaConf interpolation over a composed config tree (the authors' configs
// are Hydra + OmegaConf, CLAIRE-Labo/RAT configs/): every `${...}` in a
// scalar is replaced by what it names, after composition and overrides, so
// `data.seq_len=1024` on the command line reaches every `${..seq_len}`.
//   ${a.b.c}        the value at an absolute dotted path
//   ${.x} ${..x}    relative: `.` is the mapping holding the value, each
//                   further `.` one mapping up (OmegaConf's rule)
//   text${a}text    string interpolation (the value's text; null is "None")
//   ${eval:EXPR}    the authors' resolver (Python eval): arithmetic on
//                   numbers, + - * / // % ** and parentheses
//   ${oc.select:KEY,DEFAULT}  the value at KEY, or DEFAULT when absent/null
//   ${oc.env:NAME,DEFAULT}    an environment variable
//   ${now:FORMAT}   Hydra's: the local time through strftime
// A whole-value `${a.b}` keeps the type of its target (a mapping is copied,
// resolved); nested `${...}` inside keys and resolver arguments resolve first.
#pragma once

#include <yaml-cpp/yaml.h>

#include <functional>
#include <string>

namespace rat {

// Where the value at a dotted path came from ("FILE:LINE", or the override),
// for messages.
using OriginOf = std::function<std::string(const std::string& dotted)>;

// Resolves every interpolation of `root` in place. Errors are one line:
//   ORIGIN: dotted.key: interpolation '${x.y}' names 'x.y', which the config does not have
//   ORIGIN: dotted.key: interpolation cycle a.b -> c.d -> a.b
void resolve_interpolations(YAML::Node root, const OriginOf& origin);

}  // namespace rat
