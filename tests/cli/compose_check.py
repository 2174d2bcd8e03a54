"""`rat train experiment=NAME --print-config` for the authors' ten experiments against an
oracle that rat's code did not write: OmegaConf (python3-omegaconf) merges the same files in the
order their defaults lists give and resolves the interpolations, with the authors' own `eval`
resolver (Python's eval, as their code registers it). Also the command-line forms: a file path
with a defaults list, ./configs vs the compiled-in tree, group and key overrides, and errors.

usage: compose_check.py RAT CONFIGS_DIR
"""
import os
import re
import subprocess
import sys
import tempfile

import yaml
from omegaconf import OmegaConf

RAT, ROOT = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
MIXERS = ["attention", "attention_localattention_interleave", "rat",
          "rat_localattention_interleave", "rnn"]
OmegaConf.register_new_resolver("eval", eval)  # the authors' resolver
OmegaConf.register_new_resolver("now", lambda fmt: "now")
failures = []


def check(ok, what):
    if not ok:
        failures.append(what)
        print("FAIL:", what)


def load(rel):
    return OmegaConf.load(os.path.join(ROOT, rel + ".yaml"))


def without_defaults(cfg):
    return OmegaConf.create({k: v for k, v in OmegaConf.to_container(cfg).items()
                             if k != "defaults"})


def place(cfg, package):
    for key in reversed(package.split(".") if package else []):
        cfg = OmegaConf.create({key: cfg})
    return cfg


def oracle(experiment, keys=(), groups=None):
    """The authors' tree has two levels: config.yaml (_self_ first, then the experiment,
    `@package _global_`), whose defaults are `/group[@pkg]: option` entries and _self_ last."""
    groups = groups or {}
    cfg = without_defaults(load("config"))
    exp = load("experiment/" + experiment)
    for entry in exp.defaults:
        if entry == "_self_":
            cfg = OmegaConf.merge(cfg, without_defaults(exp))
            continue
        (key, option), = entry.items()
        group, _, pkg = key.lstrip("/").partition("@")
        option = groups.get(key.lstrip("/"), option)
        cfg = OmegaConf.merge(cfg, place(load(group + "/" + option), pkg or group.replace("/", ".")))
    for kv in keys:
        k, v = kv.split("=", 1)
        OmegaConf.update(cfg, k, yaml.safe_load(v), merge=True)
    out = OmegaConf.to_container(cfg, resolve=True)
    out.pop("hydra", None)  # Hydra's own settings are not part of the job's config
    return out


def same(a, b, path=""):
    """Equal trees; scalars equal as numbers when both are numbers (YAML text differs: 8.0e-4)."""
    if isinstance(a, dict) and isinstance(b, dict):
        for k in set(a) | set(b):
            if k not in a or k not in b:
                return path + "." + str(k) + (" only in rat" if k in a else " missing in rat")
            d = same(a[k], b[k], path + "." + str(k))
            if d:
                return d
        return None
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return path + ": list lengths differ"
        for i, (x, y) in enumerate(zip(a, b)):
            d = same(x, y, "%s[%d]" % (path, i))
            if d:
                return d
        return None
    if a == b:
        return None
    try:
        if not isinstance(a, bool) and not isinstance(b, bool) and float(a) == float(b):
            return None
    except (TypeError, ValueError):
        pass
    return "%s: rat %r, oracle %r" % (path, a, b)


def rat(*args, cwd=None):
    return subprocess.run([RAT, "train", *args], capture_output=True, text=True, cwd=cwd)


def printed(*args, cwd=None):
    r = rat(*args, "--print-config", cwd=cwd)
    check(r.returncode == 0, "%s: exit %d: %s" % (" ".join(args), r.returncode, r.stderr.strip()))
    check("${" not in r.stdout, "%s: unresolved interpolation left" % " ".join(args))
    return yaml.safe_load(r.stdout) if r.returncode == 0 else {}


cases = [(f + "/" + m + "-xl", [], {}) for f in ("fineweb_edu", "sft") for m in MIXERS]
cases += [
    ("sft/rat-xl", ["data._name_=narrativeqa_summary"], {}),
    ("sft/rat_localattention_interleave-xl", ["data._name_=qmsum", "data.seq_len=1024",
                                              "model.backbone.seq_cell1.chunk_size=32"], {}),
    ("fineweb_edu/attention-xl", ["optim.optimizer.lr=3e-4"], {"optim/optimizer": "adam"}),
]
for name, keys, groups in cases:
    args = ["--config-dir", ROOT, "experiment=" + name] + keys
    args += ["%s=%s" % kv for kv in groups.items()]
    d = same(printed(*args), oracle(name, keys, groups))
    check(d is None, "%s: %s" % (" ".join(args), d))

# Values read off the authors' files by hand, so the oracle itself is checked too.
got = printed("--config-dir", ROOT, "experiment=sft/rat-xl")
check(got.get("trainer", {}).get("pretrained_path") == "./pretrain_1B_100BT_fineweb/ratl16",
      "sft/rat-xl pretrained_path: %r" % got.get("trainer", {}).get("pretrained_path"))
check(got.get("model", {}).get("embedding", {}).get("pe", {}).get("max_num_chunk") == 256,
      "sft/rat-xl max_num_chunk 4096 // 16")
check(got.get("wandb", {}).get("job_type") == "sft_narrativeqa", "sft job_type")

# The same experiment as a file path (its defaults list composes in the tree above it), from
# the checkout (./configs) and from elsewhere (the compiled-in tree).
repo = os.path.dirname(ROOT)
by_path = printed(os.path.join(ROOT, "experiment/sft/rat-xl.yaml"), cwd=tempfile.gettempdir())
check(same(by_path, got) is None, "file path vs experiment=: %s" % same(by_path, got))
check(same(printed("experiment=sft/rat-xl", cwd=repo), got) is None, "./configs default")
check(same(printed("experiment=sft/rat-xl", cwd=tempfile.gettempdir()), got) is None,
      "compiled-in configs default")
# Plain files load as before.
for m in MIXERS:
    printed(os.path.join(ROOT, "experiment/pydoc/%s-small.yaml" % m))

# Errors: one line, non-zero exit, naming what was wrong and what was expected.
for args, want in [
    (["experiment=fineweb_edu/nope"], r"group 'experiment' has no option 'fineweb_edu/nope'.*"
                                      r"expected one of: .*fineweb_edu/rat-xl"),
    (["experiment=sft/rat-xl", "data=nope"], r"group 'data' has no option 'nope'.*sft/llama"),
    (["experiment=sft/rat-xl", "data._nme_=x"], r"did you mean 'data._name_'"),
    (["experiment=sft/rat-xl", "model.head._name_=cls"],
     r"override 'model.head._name_=cls'.*not supported by rat"),
    (["experiment=sft/rat-xl", "+model.backbone.colour=red"], r"unknown key 'model.backbone.colour'"),
    ([], r"give a config file or experiment=NAME"),
]:
    r = rat("--config-dir", ROOT, *args, "--print-config")
    msg = r.stderr.strip()
    check(r.returncode != 0 and re.search(want, msg) is not None and "\n" not in msg,
          "%s: exit %d, %r (expected /%s/)" % (args, r.returncode, msg, want))

print("compose_check: %d failure(s)" % len(failures))
sys.exit(1 if failures else 0)
