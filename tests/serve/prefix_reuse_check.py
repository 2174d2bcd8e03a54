"""`rat serve`'s prefix reuse for every mixer and a hybrid, on small models
trained here (rat, attention, local attention, rnn, local + rat interleaved):
a conversation sent again with more tokens continues the state its slot
kept (metric rat_prompt_tokens_reused_total grows by the held tokens), and
its greedy answer equals the same request prefilled from scratch (after
another request took the slot) and `rat generate --greedy` on the same ids.

usage: prefix_reuse_check.py RAT WORKDIR
"""
import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

RAT, WORK = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
failures = []
ENV = dict(os.environ, OMP_NUM_THREADS="1")


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what, flush=True)


def rat(*args, cwd=WORK):
    p = subprocess.run([RAT, *args], capture_output=True, text=True, env=ENV, cwd=cwd, timeout=600)
    if p.returncode != 0:
        sys.exit(f"rat {' '.join(args)} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
    return p


shutil.rmtree(WORK, ignore_errors=True)
os.makedirs(os.path.join(WORK, "text"))
for d in range(4):
    with open(os.path.join(WORK, "text", f"doc{d}.txt"), "w") as f:
        for j in range(25):
            f.write(f"The pass key is {10000 + 37 * (d * 25 + j)}. The grass is green.\n")
rat("tokenize", "--input", "text", "--out-dir", "data", "--vocab-size", "300",
    "--val-fraction", "0.2")

MIXERS = {
    "rat": ("sequence", "seq_cell: {_name_: rat, d_head: 8, ngroups: 1, chunk_size: 8}",
            "interrope"),
    "attention": ("sequence", "seq_cell: {_name_: attention, d_head: 8}", "rope"),
    "local_attention": ("sequence", "seq_cell: {_name_: local_attention, d_head: 8, "
                        "window_size: 6}", "rope"),
    "rnn": ("sequence", "seq_cell: {_name_: rnn}", "empty"),
    "hybrid": ("sequence_interleave",
               "interleave_step: 2, seq_cell: {_name_: local_attention, d_head: 8, "
               "window_size: 6}, seq_cell1: {_name_: rat, d_head: 8, ngroups: 2, chunk_size: 4}",
               "rope_interrope"),
}

for name, (backbone, cells, pe) in MIXERS.items():
    run = os.path.join(WORK, name)
    os.makedirs(run)
    step = "" if "interleave_step" in cells else "interleave_step: 1, "
    with open(os.path.join(run, "exp.yaml"), "w") as f:
        f.write(f"""data: {{seq_len: 64, vocab_size: 300, num_bytes: 2, ignore_input_index: 2,
  batch_size: 4, global_batch_size: 4,
  train: {{_name_: lm_ordered, tokenized_file_path: ../data/train.bin}},
  val: {{_name_: lm_ordered, tokenized_file_path: ../data/val.bin}}, val_samples: 2}}
model:
  backbone: {{_name_: {backbone}, num_layers: {3 if name == "hybrid" else 2}, d_model: 32, {step}{cells},
    hidden_cell: {{_name_: ffn, d_ffn: 64, act_fn: gelu, bias: false}}}}
  embedding: {{vocab_size: 300, pe: {{_name_: {pe}, base: 10000}}}}
task: {{tie_embedding: true, ignore_index: -100}}
optim:
  optimizer: {{_name_: adamw, lr: 1.0e-2, weight_decay: 0.1, betas: [0.9, 0.95], eps: 1.0e-8}}
  lr_scheduler: {{_name_: cosine, warmup_iter: 0.1, eta_min: 1.0e-4}}
trainer: {{seed: 1, dtype: float32, max_steps: 30, gradient_clipping: 1.0, log_interval: 10,
  eval_interval: 0, save_checkpoint: true, load_checkpoint: false, save_interval: 1.0,
  save_dir: run}}
""")
    rat("train", "exp.yaml", "--quiet", cwd=run)
    model = os.path.join(run, "run", "latest")

    log = open(os.path.join(run, "serve.log"), "w+")
    srv = subprocess.Popen([RAT, "serve", "--model", model, "--port", "0", "--parallel", "1",
                            "--ctx", "128"], stdout=log, stderr=log, env=ENV)
    port = None
    deadline = time.time() + 60
    while port is None and time.time() < deadline and srv.poll() is None:
        time.sleep(0.1)
        log.seek(0)
        m = re.search(r"listening on http://127\.0\.0\.1:(\d+)", log.read())
        port = int(m.group(1)) if m else None
    if port is None:
        srv.kill()
        log.seek(0)
        sys.exit(f"{name}: rat serve did not start:\n{log.read()}")

    def post(body):
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        c.request("POST", "/v1/completions", body=json.dumps(body),
                  headers={"Content-Type": "application/json"})
        r = c.getresponse()
        j = json.loads(r.read())
        c.close()
        return r.status, j

    def reused():
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        c.request("GET", "/metrics")
        text = c.getresponse().read().decode()
        c.close()
        return float(re.search(r"^rat_prompt_tokens_reused_total (\S+)$", text, re.M).group(1))

    def greedy(ids, n):
        return post({"prompt": ids, "max_tokens": n, "temperature": 0, "ignore_eos": True,
                     "return_token_ids": True})

    P = [3 + (5 * k) % 290 for k in range(21)]
    st, j1 = greedy(P, 10)
    G = j1["choices"][0]["token_ids"]
    check(st == 200 and len(G) == 10, f"{name}: first answer {j1}")
    prompt2 = P + G + [7, 11, 13]
    r0 = reused()
    st, reuse = greedy(prompt2, 12)
    held = len(P) + len(G) - 1  # the last generated token was never fed
    check(st == 200 and reused() - r0 == held,
          f"{name}: the continuation reused {reused() - r0} tokens, expected {held}")
    greedy([9, 8, 7, 6], 3)  # takes the only slot: the next request starts from scratch
    r1 = reused()
    st, fresh = greedy(prompt2, 12)
    check(st == 200 and reused() == r1, f"{name}: the fresh request reused nothing")
    check(reuse["choices"][0]["token_ids"] == fresh["choices"][0]["token_ids"],
          f"{name}: reused {reuse['choices'][0]['token_ids']} != fresh "
          f"{fresh['choices'][0]['token_ids']}")
    g = json.loads(rat("generate", "--model", model, "--prompt-ids", " ".join(map(str, prompt2)),
                       "--greedy", "--ignore-eos", "--max-new-tokens", "12", "--json").stdout)
    check(g["outputs"][0]["ids"] == fresh["choices"][0]["token_ids"],
          f"{name}: fresh {fresh['choices'][0]['token_ids']} != rat generate "
          f"{g['outputs'][0]['ids']}")
    srv.send_signal(signal.SIGTERM)
    check(srv.wait(30) == 0, f"{name}: exit status")
    print(f"{name}: reused {held} tokens; {len(fresh['choices'][0]['token_ids'])} ids equal",
          flush=True)

if failures:
    sys.exit(f"{len(failures)} failures")
print("prefix_reuse_check: all passed")
