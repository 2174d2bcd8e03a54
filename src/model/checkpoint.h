// Weights into an already built model, by name (SPEC.md "Checkpoints and
// configs"): the caller's config decides the model, the file only brings
// tensors, as the authors' trainer.pretrained_path does.
#pragma once

#include <string>

namespace rat {

class Model;

// Reads every parameter of `model` from the safetensors file `file` by its
// SPEC.md name (a stored `_orig_mod.` prefix, torch.compile's, is stripped
// as the authors' loader does), after checking all of them: each one-line error names the
// file and the tensor,
//   FILE: tensor 'NAME' has shape [A], <model> needs [B]
//   FILE: tensor 'NAME' is missing, <model> needs it (shape [B])
//   FILE: tensor 'NAME' (shape [A]) is not part of <model>
// with `model_words` as <model> (e.g. "the experiment's model"). A tied model
// accepts a stored head.lm_head.weight only when it equals the embedding (as
// PyTorch's state_dict keeps both). Names and shapes are all checked before
// any data is read.
void load_weights_by_name(Model& model, const std::string& file, const std::string& model_words);

// The weights file of a pretrained path: DIR/model.safetensors for a model
// directory (a checkpoint such as run/latest), else the path itself.
std::string weights_file_of(const std::string& path);

}  // namespace rat
