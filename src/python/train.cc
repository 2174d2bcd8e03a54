// rat.train: `rat train` from Python, the metrics.jsonl records handed back as dicts.
#include <omp.h>

#include "python/common.h"
#include "train/experiment_source.h"
#include "train/trainer.h"

namespace rat::python {

namespace {

// A value of an overrides dict as `rat train` reads `key=value` (YAML): True -> true,
// None -> null, numbers and strings as written, lists as YAML flow sequences.
std::string override_value(const py::handle& v) {
  if (v.is_none()) return "null";
  if (py::isinstance<py::bool_>(v)) return v.cast<bool>() ? "true" : "false";
  if (py::isinstance<py::list>(v) || py::isinstance<py::tuple>(v)) {
    std::string s = "[";
    for (const py::handle& x : v) s += (s.size() > 1 ? ", " : "") + override_value(x);
    return s + "]";
  }
  return py::str(v);
}

std::vector<std::string> overrides_from_python(const py::object& obj) {
  std::vector<std::string> out;
  if (obj.is_none()) return out;
  if (py::isinstance<py::dict>(obj)) {
    for (const auto& [k, v] : obj.cast<py::dict>())
      out.push_back(std::string(py::str(k)) + "=" + override_value(v));
    return out;
  }
  if (is_text(obj))
    throw py::type_error("overrides: a str, expected a list of 'key=value' strings or a dict");
  for (const py::handle& h : obj) {
    if (!is_text(h)) throw py::type_error("overrides: expected 'key=value' strings");
    out.push_back(h.cast<std::string>());
  }
  return out;
}

py::list train(const py::object& config, const py::object& overrides, const py::object& run_dir,
               bool overwrite, const py::object& config_dir, const py::object& on_record,
               const py::object& threads, bool quiet) {
  std::string cfg;
  if (!config.is_none())
    cfg = py::str(py::module_::import("os").attr("fspath")(config)).cast<std::string>();
  const std::vector<std::string> ov = overrides_from_python(overrides);
  const std::string dir =
      config_dir.is_none()
          ? default_config_dir(std::string(RAT_SOURCE_DIR) + "/configs")
          : py::str(py::module_::import("os").attr("fspath")(config_dir)).cast<std::string>();
  if (!threads.is_none()) {
    const int n = threads.cast<int>();
    if (n < 1) throw Error("threads: " + std::to_string(n) + ", expected at least 1");
    omp_set_num_threads(n);
  }
  if (!on_record.is_none() && !PyCallable_Check(on_record.ptr()))
    throw py::type_error("on_record: expected a callable taking one dict");

  TrainOptions t;
  if (!run_dir.is_none())
    t.run_dir = py::str(py::module_::import("os").attr("fspath")(run_dir)).cast<std::string>();
  t.overwrite = overwrite;
  t.quiet = quiet;
  py::list records;
  py::object loads = py::module_::import("json").attr("loads");
  t.on_record = [&](const std::string& record) {
    py::gil_scoped_acquire gil;
    py::object d = loads(record);
    records.append(d);
    if (!on_record.is_none()) on_record(d);
  };
  {
    py::gil_scoped_release nogil;
    const bool is_file = !cfg.empty() && cfg.find('=') == std::string::npos;
    Experiment e = missing_if_absent(is_file ? cfg : std::string("."),
                                     [&] { return load_train_experiment(cfg, ov, dir); });
    rat::train(e, t);
  }
  return records;
}

}  // namespace

void bind_train(py::module_& m) {
  m.def("train", &train, py::arg("config") = py::none(), py::arg("overrides") = py::none(),
        py::arg("run_dir") = py::none(), py::arg("overwrite") = false,
        py::arg("config_dir") = py::none(), py::arg("on_record") = py::none(),
        py::arg("threads") = py::none(), py::arg("quiet") = true,
        "train(config=None, overrides=None, run_dir=None, overwrite=False, config_dir=None,\n"
        "      on_record=None, threads=None, quiet=True) -> list[dict]\n\n"
        "`rat train CONFIG [overrides] --run-dir RUN_DIR`: config is an experiment file\n"
        "(plain, or with a Hydra defaults list) or None with 'experiment=NAME' among the\n"
        "overrides (or config='experiment=NAME'), composed from config_dir (default:\n"
        "./configs when it holds config.yaml, else the configs/ of rat's checkout).\n"
        "overrides: a list of 'dotted.key=value' / 'group=option' strings, or a dict\n"
        "{'optim.optimizer.lr': 3e-4, 'trainer.max_steps': 10} (True -> true, None -> null).\n"
        "run_dir: default trainer.save_dir; a run directory holding a previous run is\n"
        "refused unless overwrite=True or trainer.load_checkpoint=true resumes it.\n"
        "Returns the records this run appended to RUN_DIR/metrics.jsonl, as dicts in\n"
        "order (step records: step, loss, lr, grad_norm, tokens_per_s, mfu, ...; validation\n"
        "records: step, val_loss, val_ppl, val_tokens; a resume marker first when resuming);\n"
        "on_record(dict) is also called with each as it is written (an exception it raises\n"
        "ends the run). RUN_DIR/latest is then a model directory for Model.load. quiet=False\n"
        "prints rat train's log lines. Runs on one process (no MPI); the GIL is released\n"
        "while training.");
}

}  // namespace rat::python
