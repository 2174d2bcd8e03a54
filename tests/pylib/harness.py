"""What the end-to-end Python checks (tests/cli, tests/serve, tests/faults,
tests/python) and bench/serve_load.py share: running `rat`, a tiny corpus and
experiment trained in seconds, and a `rat serve` process on a free port.

Each check adds this folder to sys.path:
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "pylib"))
"""
import http.client
import json
import os
import re
import signal
import subprocess
import sys
import time


class Checks:
    """Collects failed checks instead of stopping at the first one."""

    def __init__(self):
        self.failures = []

    def __call__(self, cond, what):
        if not cond:
            self.failures.append(what)
            print("FAIL:", what, flush=True)
        return cond


def run(rat, *args, cwd, ok=True, stdin=None, env=None, timeout=600, threads="1"):
    """`rat ARGS` in cwd with OMP_NUM_THREADS=threads (None: inherited); a
    failure exits the check with rat's output when ok, else is returned."""
    e = dict(os.environ if env is None else env)
    if threads is not None:
        e["OMP_NUM_THREADS"] = threads
    p = subprocess.run([rat, *args], capture_output=True, text=True, env=e, cwd=cwd,
                       input=stdin, timeout=timeout)
    if ok and p.returncode != 0:
        sys.exit(f"rat {' '.join(args)} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
    return p


def pass_key_line(k):
    return f"The pass key is {10000 + 37 * k}. The grass is green.\n"


def write_docs(text_dir, docs=6, lines=25, line=pass_key_line):
    """docs files of `lines` lines each, line(k) for k = 0, 1, ... across them."""
    os.makedirs(text_dir, exist_ok=True)
    for d in range(docs):
        with open(os.path.join(text_dir, f"doc{d}.txt"), "w") as f:
            for j in range(lines):
                f.write(line(d * lines + j))


def tokenize(rat, work, *extra):
    """work/text -> work/data: a 300-piece tokenizer and the token files."""
    return run(rat, "tokenize", "--input", "text", "--out-dir", "data", "--vocab-size", "300",
               "--val-fraction", "0.2", *extra, cwd=work)


# Mixer cells of the tiny models: (backbone, cells, position encoding).
RAT = ("sequence", "interleave_step: 1, seq_cell: {_name_: rat, d_head: 8, ngroups: 1, "
       "chunk_size: 8}", "interrope")
ATTENTION = ("sequence", "interleave_step: 1, seq_cell: {_name_: attention, d_head: 8}", "rope")
LOCAL_ATTENTION = ("sequence", "interleave_step: 1, seq_cell: {_name_: local_attention, "
                   "d_head: 8, window_size: 6}", "rope")
RNN = ("sequence", "interleave_step: 1, seq_cell: {_name_: rnn}", "empty")
HYBRID = ("sequence_interleave", "interleave_step: 2, seq_cell: {_name_: local_attention, "
          "d_head: 8, window_size: 6}, seq_cell1: {_name_: rat, d_head: 8, ngroups: 2, "
          "chunk_size: 4}", "rope_interrope")


def experiment(mixer=RAT, data="data", vocab=300, seq_len=64, batch=4, layers=2, d_model=32,
               d_ffn=64, lr="1.0e-2", warmup="0.1", steps=40, log_interval=10, eval_interval=0,
               save_interval="1.0", val_samples=2):
    """An experiment YAML for a tiny model on data/{train,val}.bin, saving to run/."""
    backbone, cells, pe = mixer
    return f"""data: {{seq_len: {seq_len}, vocab_size: {vocab}, num_bytes: 2, ignore_input_index: 2,
  batch_size: {batch}, global_batch_size: {batch},
  train: {{_name_: lm_ordered, tokenized_file_path: {data}/train.bin}},
  val: {{_name_: lm_ordered, tokenized_file_path: {data}/val.bin}}, val_samples: {val_samples}}}
model:
  backbone: {{_name_: {backbone}, num_layers: {layers}, d_model: {d_model}, {cells},
    hidden_cell: {{_name_: ffn, d_ffn: {d_ffn}, act_fn: gelu, bias: false}}}}
  embedding: {{vocab_size: {vocab}, pe: {{_name_: {pe}, base: 10000}}}}
task: {{tie_embedding: true, ignore_index: -100}}
optim:
  optimizer: {{_name_: adamw, lr: {lr}, weight_decay: 0.1, betas: [0.9, 0.95], eps: 1.0e-8}}
  lr_scheduler: {{_name_: cosine, warmup_iter: {warmup}, eta_min: 1.0e-4}}
trainer: {{seed: 1, dtype: float32, max_steps: {steps}, gradient_clipping: 1.0,
  log_interval: {log_interval}, eval_interval: {eval_interval}, save_checkpoint: true,
  load_checkpoint: false, save_interval: {save_interval}, save_dir: run}}
"""


def train(rat, run_dir, *extra, **exp):
    """Writes run_dir/exp.yaml (experiment(**exp)) and trains it there;
    returns the model directory run_dir/run/latest."""
    os.makedirs(run_dir, exist_ok=True)
    with open(os.path.join(run_dir, "exp.yaml"), "w") as f:
        f.write(experiment(**exp))
    run(rat, "train", "exp.yaml", "--quiet", *extra, cwd=run_dir)
    return os.path.join(run_dir, "run", "latest")


class Server:
    """`rat serve --model MODEL --port 0 ARGS`; the port is read from its
    "listening on" line. stdout and stderr go to log_path."""

    def __init__(self, rat, model, *args, log_path, cwd=None, env=None, start_timeout=120):
        self.log = open(log_path, "w+")
        self.p = subprocess.Popen([rat, "serve", "--model", model, "--port", "0", *args],
                                  stdout=self.log, stderr=self.log, cwd=cwd,
                                  env=env if env is not None else dict(os.environ))
        self.port = None
        deadline = time.time() + start_timeout
        while self.port is None and time.time() < deadline and self.p.poll() is None:
            time.sleep(0.05)
            m = re.search(r"listening on http://127\.0\.0\.1:(\d+)", self.text())
            self.port = int(m.group(1)) if m else None
        if self.port is None:
            self.p.kill()
            sys.exit(f"rat serve did not start:\n{self.text()}")

    def text(self):
        """What the server has printed so far."""
        self.log.seek(0)
        return self.log.read()

    def request(self, method, path, body=None, headers=None, timeout=120):
        """(status, body text); a dict or list body is sent as JSON."""
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        data = body.encode() if isinstance(body, str) else (
            body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode())
        c.request(method, path, body=data,
                  headers={"Content-Type": "application/json", **(headers or {})})
        r = c.getresponse()
        text = r.read().decode("utf-8", "replace")
        c.close()
        return r.status, text

    def post(self, path, body, **kw):
        """(status, parsed JSON, or the text when it is not JSON)."""
        status, text = self.request("POST", path, body, **kw)
        try:
            return status, json.loads(text)
        except json.JSONDecodeError:
            return status, text

    def metrics(self, headers=None):
        """/metrics as {sample name with labels: value}."""
        _, text = self.request("GET", "/metrics", headers=headers, timeout=60)
        out = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                k, v = line.rsplit(" ", 1)
                out[k] = float(v)
        return out

    def metric(self, name, headers=None):
        """One metric's value (its first sample, whatever its labels); NaN if absent."""
        for k, v in self.metrics(headers).items():
            if k == name or k.startswith(name + "{"):
                return v
        return float("nan")

    def status_kib(self, field):
        """A /proc/PID/status field in KiB (VmRSS, VmHWM)."""
        with open(f"/proc/{self.p.pid}/status") as f:
            return int(re.search(rf"{field}:\s+(\d+)", f.read()).group(1))

    def stop(self, timeout=30):
        """SIGTERM, then wait: (exit status or "hung", seconds, the log)."""
        t0 = time.time()
        self.p.send_signal(signal.SIGTERM)
        try:
            rc = self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
            rc = "hung"
        return rc, time.time() - t0, self.text()
