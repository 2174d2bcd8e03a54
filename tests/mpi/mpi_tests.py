#!/usr/bin/env python3
"""Data-parallel training under Open MPI, end to end through `rat train`.

    mpi_tests.py equivalence|resume|rank_failure|sharding|shard_grad_op RAT MPIRUN

equivalence   N ranks x micro-batch b x accumulation a give the per-step losses
              of 1 rank x b x N*a over the same global batches (N = 2 and 3,
              overlapped and blocking all-reduce), within a stated tolerance;
              a negative control shows the comparison catches other batches.
resume        ranks' parameters are checked equal at each checkpoint (a drift made
              with RAT_TEST_ABORT_RANK_AT=1:1:perturb is found and repaired);
              2 ranks stopped and resumed equal a straight 2-rank run bit for
              bit; resuming with 4 ranks (which do not divide the step's 6
              micro-batches) is refused, naming both counts;
              SIGUSR1 to one rank stops both after the same step with a checkpoint.
rank_failure  rank 1 aborts (RAT_TEST_ABORT_RANK_AT=1:3) or hangs
              (RAT_TEST_ABORT_RANK_AT=1:3:hang, with --comm-timeout 5): the job
              ends within a bounded time with a message, `latest` points to a
              complete checkpoint, and resuming from it finishes the run with
              the straight run's losses.
sharding      ZeRO-1 (trainer.fsdp.sharding_strategy=ZERO1) on 2 and 3 ranks
              equals NO_SHARD bit for bit (losses, weights, the gathered
              optimiser state) with 1/N of the state per rank; its checkpoints
              resume under either strategy bit-exactly; FULL_SHARD is refused
              by name.
shard_grad_op SHARD_GRAD_OP (2: gradients reduce-scattered every micro-step,
              optimiser state sharded) on 2 and 3 ranks equals NO_SHARD within
              RTOL (losses, grad norms; weights in L2), with 1/N of the gradient and
              the state per rank; resumed under itself it equals the straight
              run bit for bit; its checkpoint resumes under NO_SHARD, and on 3
              ranks and on 1 (the same micro-batches shared out anew), within
              RTOL of the straight run.

Every run uses one thread per rank, so that each micro-batch's forward and
backward is computed identically in every layout and only the order in which
micro-batch gradients and losses are summed differs.
"""
import json
import re
import os
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time

T = 24        # seq_len
B = 2         # micro-batch per rank
VOCAB = 64
SAMPLES = 120  # divisible by every global batch used here (8, 6, 12)
STEPS = 6

# Relative tolerance on per-step losses, gradient norms and the final
# validation loss between layouts. The micro-batch gradients are bitwise
# identical in every layout; only their summation order differs (rank-local
# accumulation, then the all-reduce, versus one sequential accumulation), which
# in float32 changes a gradient by a few ulp (~1e-7 relative). AdamW's update
# m/sqrt(v) carries that through at about the same relative size, so the
# losses drift apart only at the 1e-8..1e-7 level over 6 steps: measured at
# most 1.5e-8 (2 and 3 ranks). 1e-6 leaves ~60x headroom for other MPI
# reduction trees, while any real error (a wrong sample, a missing 1/N, a
# bucket not reduced) moves the loss by >1e-3 relative, as the negative
# control below shows (0.19).
RTOL = 1e-6


def write_tokens(path, samples):
    flat = [t for s in samples for t in s] + [2]
    with open(path, "wb") as f:
        f.write(struct.pack("<%dH" % len(flat), *flat))


def make_samples(n, seed):
    # A learnable pattern; each sample ends with the document separator
    # (ignore_input_index 2), so its last label is -100 whatever follows and
    # whole samples can be reordered without changing any sample.
    pat = [3 + (seed * 7919 + i * 104729) % (VOCAB - 3) for i in range(97)]
    return [[pat[(s * 11 + t) % 97] for t in range(T - 1)] + [2] for s in range(n)]


def rank_layout(samples, n_ranks, accum):
    """The samples in the order one rank reads them in N-rank steps.

    The authors' lm_ordered loader (and ours, src/train/sampler.cc) gives rank
    r the contiguous range [r*P, (r+1)*P), P = samples/N, read b at a time. So
    step s of N ranks covers, rank by rank, samples r*P + s*a*b + [0, a*b).
    One rank with accumulation N*a reads [s*N*a*b, (s+1)*N*a*b) in order; this
    reorders the file so that it sees exactly the N-rank global batches."""
    per = len(samples) // n_ranks
    out = []
    for s in range(per // (accum * B)):
        for r in range(n_ranks):
            base = r * per + s * accum * B
            out.extend(samples[base:base + accum * B])
    return out


def write_config(d, train_bin, global_batch, run_dir, save_interval=0.5):
    cfg = os.path.join(d, "exp-%d-%s.yaml" % (global_batch, os.path.basename(train_bin)))
    with open(cfg, "w") as f:
        f.write(f"""data: {{seq_len: {T}, vocab_size: {VOCAB}, num_bytes: 2, ignore_input_index: 2,
       batch_size: {B}, global_batch_size: {global_batch},
       train: {{_name_: lm_ordered, tokenized_file_path: {train_bin}}},
       val: {{_name_: lm_ordered, tokenized_file_path: {d}/val.bin}}, val_samples: 9}}
model:
  backbone: {{_name_: sequence, num_layers: 2, d_model: 32, interleave_step: 1,
    seq_cell: {{_name_: rat, d_head: 8, ngroups: 2, chunk_size: 5}},
    hidden_cell: {{_name_: ffn, d_ffn: 64, act_fn: gelu, bias: false}}}}
  embedding: {{vocab_size: {VOCAB}, pe: {{_name_: interrope, base: 10000}}}}
task: {{tie_embedding: true, ignore_index: -100}}
optim:
  optimizer: {{_name_: adamw, lr: 3.0e-3, weight_decay: 0.1, betas: [0.9, 0.95], eps: 1.0e-8}}
  lr_scheduler: {{_name_: cosine, warmup_iter: 0.2, eta_min: 1.0e-6}}
trainer: {{seed: 7, dtype: float32, max_steps: {STEPS}, gradient_clipping: 1.0, log_interval: 1,
  eval_interval: 0, save_checkpoint: true, load_checkpoint: false, save_interval: {save_interval},
  save_dir: {run_dir}}}
""")
    return cfg


class Runner:
    def __init__(self, rat, mpirun):
        self.rat, self.mpirun = rat, mpirun

    def run(self, n_ranks, cfg, run_dir, *extra, env=None, timeout=120, check=True, quiet=True):
        cmd = [self.rat, "train", cfg, "--run-dir", run_dir, *(["--quiet"] if quiet else []),
               "--threads", "1", *extra]
        if n_ranks > 0:  # 0: a plain process, no launcher
            cmd = [self.mpirun, "--oversubscribe", "--allow-run-as-root", "-np", str(n_ranks),
                   *cmd]
        t0 = time.time()
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                           env=dict(os.environ, **(env or {})))
        p.elapsed = time.time() - t0
        if check and p.returncode != 0:
            sys.exit("FAIL: %s exited %d\n%s\n%s" % (" ".join(cmd), p.returncode, p.stdout,
                                                      p.stderr))
        return p


def metrics(run_dir):
    """step -> record (the last record of a step wins, as after a resume)."""
    steps, val = {}, None
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        for line in f:
            j = json.loads(line)
            if "loss" in j:
                steps[j["step"]] = j
            if "val_loss" in j:
                val = j["val_loss"]
    return steps, val


def max_rel(a_dir, b_dir, keys=("loss", "grad_norm")):
    a, va = metrics(a_dir)
    b, vb = metrics(b_dir)
    if sorted(a) != list(range(1, STEPS + 1)) or sorted(b) != sorted(a):
        sys.exit("FAIL: steps logged differ: %s vs %s" % (sorted(a), sorted(b)))
    worst = 0.0
    for s in a:
        for k in keys:
            worst = max(worst, abs(a[s][k] - b[s][k]) / abs(a[s][k]))
    worst = max(worst, abs(va - vb) / abs(va))
    return worst


def check(cond, msg):
    if not cond:
        sys.exit("FAIL: " + msg)
    print("ok:", msg)


def test_equivalence(r, d):
    samples = make_samples(SAMPLES, 1)
    write_tokens(os.path.join(d, "train.bin"), samples)
    cases = [  # (ranks, accumulation per rank, extra flags)
        (2, 2, ["--bucket-mb", "0.01"]),  # a bucket per block: several in flight
        (2, 2, ["--no-overlap"]),
        (3, 1, ["--bucket-mb", "0.01"]),
    ]
    for n, a, extra in cases:
        g = B * n * a
        name = "n%d-a%d%s" % (n, a, extra[0])
        ref_bin = os.path.join(d, "train-ref-%d-%d.bin" % (n, a))
        write_tokens(ref_bin, rank_layout(samples, n, a))
        ref = os.path.join(d, "ref-" + name)
        r.run(0, write_config(d, ref_bin, g, ref), ref)  # 1 rank, accumulation n*a
        par = os.path.join(d, "par-" + name)
        r.run(n, write_config(d, os.path.join(d, "train.bin"), g, par), par, *extra)
        diff = max_rel(ref, par)
        print("%s: max relative difference %.3g over %d steps" % (name, diff, STEPS))
        check(diff <= RTOL, "%d ranks x accumulation %d %s equal 1 rank x accumulation %d "
              "within %g (got %.3g)" % (n, a, " ".join(extra), n * a, RTOL, diff))
        if n == 2 and "--no-overlap" not in extra:
            # Negative control: the same single-rank run on the unreordered
            # file sees other global batches and must fail the comparison.
            other = os.path.join(d, "ref-unordered")
            r.run(0, write_config(d, os.path.join(d, "train.bin"), g, other), other)
            bad = max_rel(other, par)
            check(bad > 100 * RTOL, "other batches differ by %.3g > 100 x tolerance" % bad)
        m, _ = metrics(par)
        check(all("comm_wait_s" in m[s] and m[s]["comm_wait_s"] >= 0 for s in m),
              "comm_wait_s logged every step")


def loss_steps(run_dir):
    """The steps of the metrics file's loss records, in file order."""
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        return [j["step"] for j in map(json.loads, f) if "loss" in j]


def resume_and_check(r, n_ranks, cfg, run_dir, at_step):
    """Resumes run_dir and checks it was a real resume at `at_step`, not a silent
    restart with the same seed (which would reach the same final losses and, the
    last record of a step winning, the same per-step table): the trainer says
    where it resumed, and the records this run added are exactly steps
    at_step+1 .. STEPS, once each."""
    before = loss_steps(run_dir)
    p = r.run(n_ranks, cfg, run_dir, "trainer.load_checkpoint=true")
    check(re.search(r"resumed from \S*step-%08d at step %d\b" % (at_step, at_step), p.stdout),
          "resumed at step %d: %s" % (at_step, p.stdout.strip().splitlines()[:2]))
    added = loss_steps(run_dir)[len(before):]
    check(added == list(range(at_step + 1, STEPS + 1)),
          "the resumed run logged steps %d..%d once each (got %s)" % (at_step + 1, STEPS, added))


def test_resume(r, d):
    write_tokens(os.path.join(d, "train.bin"), make_samples(SAMPLES, 2))
    tb = os.path.join(d, "train.bin")
    straight = os.path.join(d, "straight")
    p = r.run(2, write_config(d, tb, 12, straight), straight)
    check("differ from rank 0" not in p.stderr, "ranks' parameters stay identical")
    drift = os.path.join(d, "drift")
    p = r.run(2, write_config(d, tb, 12, drift), drift,
              env={"RAT_TEST_ABORT_RANK_AT": "1:1:perturb"})
    # Checkpoints after steps 3 and 6: the drift made in step 2 is found at the
    # first and repaired, so the second finds none.
    check(p.stderr.count("differ from rank 0") == 1 and "after step 3" in p.stderr,
          "a rank's drifted parameters are found once and re-synchronised:\n" + p.stderr)
    part = os.path.join(d, "part")
    cfg = write_config(d, tb, 12, part)
    r.run(2, cfg, part, "--stop-after", "3")
    check(os.path.exists(os.path.join(part, "latest", "model.safetensors")),
          "stopped run saved a checkpoint")
    # 2 ranks x accumulation 3: 6 micro-batches per step, which 4 ranks cannot share.
    p = r.run(4, cfg, part, "trainer.load_checkpoint=true", check=False)
    check(p.returncode != 0 and "as 2 ranks do, but this run has 4, which do not divide its 6 "
          "micro-batches per step" in p.stderr,
          "resume with 4 ranks refused with a clear message: " + p.stderr.strip()[-300:])
    resume_and_check(r, 2, cfg, part, 3)
    test_stop_signal_to_one_rank(r, d, tb)
    a, va = metrics(straight)
    b, vb = metrics(part)
    check(sorted(b) == list(range(1, STEPS + 1)), "resumed run logged every step once")
    # Same ranks, same threads, state restored exactly: bit for bit.
    check(all(a[s]["loss"] == b[s]["loss"] for s in a) and va == vb,
          "resumed 2-rank run equals the straight run bit for bit")


def rank_processes(launcher_pid, exe):
    """Descendants of the launcher running `exe` (Open MPI 4 forks the ranks
    itself; Open MPI 5 forks them from a daemon under mpirun)."""
    parent, cmd = {}, {}
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                with open("/proc/%s/stat" % p) as f:
                    parent[int(p)] = int(f.read().rsplit(")", 1)[1].split()[1])
                with open("/proc/%s/cmdline" % p, "rb") as f:
                    cmd[int(p)] = f.read().split(b"\0")[0].decode(errors="replace")
            except (OSError, IndexError, ValueError):
                pass
    found, todo = [], [launcher_pid]
    while todo:
        q = todo.pop()
        for child, par in parent.items():
            if par == q:
                todo.append(child)
                if os.path.realpath(cmd.get(child, "")) == os.path.realpath(exe):
                    found.append(child)
    return found


def test_stop_signal_to_one_rank(r, d, tb):
    """SIGUSR1 to one rank only (mpirun would forward it to all): the ranks
    agree through the per-step all-reduce to stop after the same step, save
    and exit cleanly, instead of one leaving while the other waits."""
    run = os.path.join(d, "signalled")
    cfg = write_config(d, tb, 12, run)
    cmd = [r.mpirun, "--oversubscribe", "--allow-run-as-root", "-np", "2", r.rat, "train", cfg,
           "--run-dir", run, "--quiet", "--threads", "1", "--comm-timeout", "20",
           "trainer.max_steps=1000000"]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    metrics_file = os.path.join(run, "metrics.jsonl")
    t0 = time.time()
    while not (os.path.exists(metrics_file) and open(metrics_file).read().count("\n") >= 2):
        if time.time() - t0 > 60 or p.poll() is not None:
            p.kill()
            sys.exit("FAIL: the signalled run did not start logging: %s" % (p.communicate(),))
        time.sleep(0.1)
    ranks = rank_processes(p.pid, r.rat)
    check(len(ranks) == 2, "found the 2 rank processes under mpirun")
    os.kill(ranks[-1], signal.SIGUSR1)
    try:
        out, err = p.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        p.kill()
        sys.exit("FAIL: ranks did not stop together after SIGUSR1 to one of them")
    check(p.returncode == 0, "SIGUSR1 to one rank: the job stops cleanly (%d)\n%s" %
          (p.returncode, err))
    with open(os.path.join(run, "latest", "trainer_state.json")) as f:
        st = json.load(f)
    check(st["world"] == 2 and st["step"] >= 2, "and saves a checkpoint (step %d)" % st["step"])


def check_latest_complete(run_dir):
    latest = os.path.join(run_dir, "latest")
    check(os.path.islink(latest), "latest exists")
    target = os.path.realpath(latest)
    check(not target.endswith(".tmp"), "latest points to a finished checkpoint " + target)
    for f in ("config.yaml", "model.safetensors", "optimizer.safetensors", "trainer_state.json"):
        check(os.path.exists(os.path.join(target, f)), "checkpoint has " + f)
    with open(os.path.join(target, "trainer_state.json")) as f:
        return json.load(f)["step"]


def test_rank_failure(r, d):
    write_tokens(os.path.join(d, "train.bin"), make_samples(SAMPLES, 3))
    tb = os.path.join(d, "train.bin")
    straight = os.path.join(d, "straight")
    r.run(2, write_config(d, tb, 8, straight), straight)
    bound = 60  # seconds: mpirun notices a dead rank at once; a hang ends at --comm-timeout
    for mode, extra in (("", []), (":hang", ["--comm-timeout", "5"])):
        run = os.path.join(d, "failing" + mode.replace(":", "-"))
        # save_interval 0.1 of 6 steps: a checkpoint after every step.
        cfg = write_config(d, tb, 8, run, save_interval=0.1)
        try:
            p = r.run(2, cfg, run, *extra, env={"RAT_TEST_ABORT_RANK_AT": "1:3" + mode},
                      timeout=bound, check=False)
        except subprocess.TimeoutExpired:
            sys.exit("FAIL: the job did not end within %d s after rank 1 %s" %
                     (bound, "hung" if mode else "aborted"))
        print(p.stderr)
        check(p.returncode != 0, "job with a failed rank exits non-zero (%d) in %.1f s" %
              (p.returncode, p.elapsed))
        if mode:
            check("rank 0 of 2: no answer from the other ranks for 5 s" in p.stderr,
                  "surviving rank names the hang and the timeout")
        else:
            check("terminated by the launcher" in p.stderr and "resume" in p.stderr,
                  "surviving rank says why it ended and how to resume")
        step = check_latest_complete(run)
        check(step in (2, 3), "last checkpoint is from step %d (rank 1 failed in step 4)" % step)
        resume_and_check(r, 2, cfg, run, step)
        a, _ = metrics(straight)
        b, _ = metrics(run)
        check(all(a[s]["loss"] == b[s]["loss"] for s in range(step + 1, STEPS + 1)),
              "resumed after the failure: steps %d..%d equal the straight run" % (step + 1, STEPS))


def same_bytes(a_dir, b_dir, name):
    with open(os.path.join(a_dir, "latest", name), "rb") as a, \
            open(os.path.join(b_dir, "latest", name), "rb") as b:
        return a.read() == b.read()


def test_sharding(r, d):
    """ZeRO-1 (trainer.fsdp.sharding_strategy: ZERO1): each rank keeps the
    optimiser state of its shard only, updates that shard and all-gathers the
    parameters. The updates are elementwise, so the run equals plain data
    parallelism (NO_SHARD, 3) bit for bit: losses, weights and the optimiser
    state rank 0 gathers into the checkpoint; checkpoints move between the two
    both ways; the strategies rat lacks are refused by name."""
    tb = os.path.join(d, "train.bin")
    write_tokens(tb, make_samples(SAMPLES, 3))
    for n in (2, 3):
        g = B * n * 2  # accumulation 2
        plain = os.path.join(d, "plain-%d" % n)
        r.run(n, write_config(d, tb, g, plain), plain, "trainer.fsdp.sharding_strategy=3")
        zero = os.path.join(d, "zero1-%d" % n)
        cfg = write_config(d, tb, g, zero)
        p = r.run(n, cfg, zero, "trainer.fsdp.sharding_strategy=ZERO1", quiet=False)
        m = re.search(r"optimizer state sharded over %d ranks \(ZeRO-1\): ([\d.]+) MiB on rank 0, "
                      r"([\d.]+) MiB unsharded" % n, p.stdout)
        check(m and abs(float(m.group(1)) * n / float(m.group(2)) - 1) < 0.02,
              "%d ranks: each keeps 1/%d of the optimiser state: %s" %
              (n, n, m.group(0) if m else p.stdout[:300]))
        a, va = metrics(plain)
        b, vb = metrics(zero)
        check(sorted(a) == sorted(b) == list(range(1, STEPS + 1)) and va == vb and
              all(a[s]["loss"] == b[s]["loss"] and a[s]["grad_norm"] == b[s]["grad_norm"]
                  for s in a), "%d ranks: ZeRO-1 losses equal NO_SHARD's bit for bit" % n)
        check(same_bytes(plain, zero, "model.safetensors") and
              same_bytes(plain, zero, "optimizer.safetensors"),
              "%d ranks: ZeRO-1 weights and gathered optimiser state equal NO_SHARD's bytes" % n)
    # Resume: a ZeRO-1 checkpoint under ZeRO-1 and under NO_SHARD, and a
    # NO_SHARD one under ZeRO-1, each equal to the straight run bit for bit.
    g = B * 2 * 2
    straight = os.path.join(d, "zero1-2")
    for first, then in (("ZERO1", "ZERO1"), ("ZERO1", "NO_SHARD"), ("NO_SHARD", "ZERO1")):
        part = os.path.join(d, "part-%s-%s" % (first, then))
        cfg = write_config(d, tb, g, part)
        r.run(2, cfg, part, "--stop-after", "3", "trainer.fsdp.sharding_strategy=" + first)
        p = r.run(2, cfg, part, "trainer.load_checkpoint=true",
                  "trainer.fsdp.sharding_strategy=" + then)
        check("resumed from" in p.stdout and "at step 3" in p.stdout,
              "%s -> %s: resumed at step 3" % (first, then))
        a, va = metrics(straight)
        b, vb = metrics(part)
        check(all(a[s]["loss"] == b[s]["loss"] for s in a) and va == vb and
              same_bytes(straight, part, "model.safetensors") and
              same_bytes(straight, part, "optimizer.safetensors"),
              "%s checkpoint resumed under %s equals the straight ZeRO-1 run bit for bit"
              % (first, then))
    for v, name in (("1", "FULL_SHARD"), ("FULL_SHARD", "FULL_SHARD")):
        bad = os.path.join(d, "bad-" + v)
        p = r.run(0, write_config(d, tb, g, bad), bad, "trainer.fsdp.sharding_strategy=" + v,
                  check=False)
        check(p.returncode != 0 and "trainer.fsdp.sharding_strategy" in p.stderr and
              name in p.stderr and "not implement" in p.stderr,
              "sharding_strategy %s refused by name: %s" % (v, p.stderr.strip()[-200:]))


def read_f32(path):
    """name -> list of floats of a safetensors file of F32 tensors."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        head = json.loads(f.read(n))
        data = f.read()
    out = {}
    for k, v in head.items():
        if k != "__metadata__" and v["dtype"] == "F32":
            a, b = v["data_offsets"]
            out[k] = struct.unpack("<%df" % ((b - a) // 4), data[a:b])
    return out


def max_rel_weights(a_dir, b_dir):
    """(|a - b| / |a| over all weights of the two model files in L2, and the
    largest elementwise |a - b| over the max |a| of its tensor, for the record).

    The first is the comparison: AdamW's update m / (sqrt(v) + eps) is about
    lr in size whatever the gradient's, so a weight whose gradient is near 0
    moves by a different fraction of lr when its few-ulp gradient differs,
    and single weights then differ by up to ~2e-6 of their tensor's scale
    (measured: as much between NO_SHARD on 3 ranks and 1 rank as between
    SHARD_GRAD_OP and NO_SHARD), while the model as a whole differs by ~2e-8."""
    a = read_f32(os.path.join(a_dir, "latest", "model.safetensors"))
    b = read_f32(os.path.join(b_dir, "latest", "model.safetensors"))
    if sorted(a) != sorted(b) or not a:
        sys.exit("FAIL: model files hold different tensors")
    num = den = worst = 0.0
    for k in a:
        num += sum((x - y) ** 2 for x, y in zip(a[k], b[k]))
        den += sum(x * x for x in a[k])
        scale = max(abs(x) for x in a[k]) or 1.0
        worst = max(worst, max(abs(x - y) for x, y in zip(a[k], b[k])) / scale)
    return (num / den) ** 0.5, worst


def test_shard_grad_op(r, d):
    """SHARD_GRAD_OP (trainer.fsdp.sharding_strategy: 2): every micro-step's
    gradients are reduce-scattered into each rank's shard (the rest of the
    buffer zeroed and released), the clip norm is summed from the shards'
    parts in rank order, the optimiser updates the shard and the parameters
    are all-gathered. Summation order differs from NO_SHARD's (a reduce per
    micro-step instead of one after local accumulation; the norm in N parts),
    so the comparison is within RTOL, not bit for bit."""
    tb = os.path.join(d, "train.bin")
    write_tokens(tb, make_samples(SAMPLES, 4))
    g = 12  # 2 ranks x accumulation 3, 3 ranks x 2: 6 micro-batches of B per step
    worst = {}
    # Buckets of 0.01 MB: several per block in flight; of 0.001 MB (262 floats):
    # the embedding's 2048 go out in 8 pieces, at most 4 in flight (launch_capped).
    for n, extra in ((2, ["--bucket-mb", "0.01"]), (3, ["--bucket-mb", "0.001"]),
                     (2, ["--no-overlap", "--bucket-mb", "0.001"])):
        plain = os.path.join(d, "plain-%d" % n)
        if not os.path.exists(plain):
            r.run(n, write_config(d, tb, g, plain), plain, "trainer.fsdp.sharding_strategy=3")
        sgo = os.path.join(d, "sgo-%d%s" % (n, extra[0]))
        p = r.run(n, write_config(d, tb, g, sgo), sgo, "trainer.fsdp.sharding_strategy=2",
                  *extra, quiet=False)
        for what, pat in (("optimiser state", r"optimizer state sharded over %d ranks "
                           r"\(SHARD_GRAD_OP\): ([\d.]+) MiB on rank 0, ([\d.]+) MiB unsharded" % n),
                          ("gradient", r"gradients reduce-scattered every micro-step \(%d per "
                           r"step\): ([\d.e-]+) MiB kept on rank 0, ([\d.e-]+) MiB unsharded"
                           % (6 // n))):
            m = re.search(pat, p.stdout)
            check(m and abs(float(m.group(1)) * n / float(m.group(2)) - 1) < 0.02,
                  "%d ranks: each keeps 1/%d of the %s: %s" %
                  (n, n, what, m.group(0) if m else p.stdout[:400]))
        lw = max_rel(plain, sgo)
        ww, we = max_rel_weights(plain, sgo)
        worst[(n, extra[0])] = (lw, ww)
        print("%d ranks %s: relative difference to NO_SHARD: losses/grad norms %.3g (max), "
              "weights %.3g (L2; largest single weight %.3g of its tensor's scale)" %
              (n, extra[0], lw, ww, we))
        check(lw <= RTOL and ww <= RTOL, "%d ranks %s: SHARD_GRAD_OP equals NO_SHARD within %g"
              % (n, " ".join(extra), RTOL))
    # Resume: stopped after 3 steps, resumed under SHARD_GRAD_OP on 2 ranks: bit for bit.
    straight = os.path.join(d, "sgo-2--bucket-mb")
    part = os.path.join(d, "part")
    cfg = write_config(d, tb, g, part)
    r.run(2, cfg, part, "--stop-after", "3", "trainer.fsdp.sharding_strategy=2",
          "--bucket-mb", "0.01")
    stopped = os.path.join(d, "stopped")
    shutil.copytree(part, stopped, symlinks=True)
    p = r.run(2, cfg, part, "trainer.load_checkpoint=true", "trainer.fsdp.sharding_strategy=2",
              "--bucket-mb", "0.01", quiet=False)
    check("resumed from" in p.stdout and "at step 3" in p.stdout, "resumed at step 3")
    a, va = metrics(straight)
    b, vb = metrics(part)
    check(all(a[s]["loss"] == b[s]["loss"] and a[s]["grad_norm"] == b[s]["grad_norm"]
              for s in a) and va == vb and
          same_bytes(straight, part, "model.safetensors") and
          same_bytes(straight, part, "optimizer.safetensors"),
          "SHARD_GRAD_OP stopped and resumed equals the straight run bit for bit")
    # The same checkpoint under NO_SHARD on 2 ranks, and under SHARD_GRAD_OP on
    # 3 ranks and on 1 (a plain process): the files are the unsharded format.
    for n, strategy in ((2, "NO_SHARD"), (3, "SHARD_GRAD_OP"), (0, "SHARD_GRAD_OP")):
        run = os.path.join(d, "resumed-%d-%s" % (n, strategy))
        shutil.copytree(stopped, run, symlinks=True)
        cfg_n = write_config(d, tb, g, run)
        p = r.run(n, cfg_n, run, "trainer.load_checkpoint=true",
                  "trainer.fsdp.sharding_strategy=" + strategy, quiet=False)
        check("at step 3" in p.stdout and
              (n == 2 or "sample order of 2 ranks, this run has %d" % max(n, 1) in p.stdout),
              "resumed at step 3 under %s on %d rank(s)" % (strategy, max(n, 1)))
        lw = max_rel(straight, run)
        ww, we = max_rel_weights(straight, run)
        print("SHARD_GRAD_OP checkpoint resumed under %s on %d rank(s): relative "
              "difference to the straight run: losses %.3g (max), weights %.3g (L2; largest "
              "single weight %.3g)" % (strategy, max(n, 1), lw, ww, we))
        check(lw <= RTOL and ww <= RTOL, "resumed under %s on %d rank(s) equals the straight "
              "SHARD_GRAD_OP run within %g" % (strategy, max(n, 1), RTOL))
    print("relative differences to NO_SHARD (losses, weights):", worst)


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    which, rat, mpirun = sys.argv[1:]
    d = tempfile.mkdtemp(prefix="rat_mpi_%s_" % which)
    try:
        write_tokens(os.path.join(d, "val.bin"), make_samples(40, 9))
        {"equivalence": test_equivalence, "resume": test_resume,
         "rank_failure": test_rank_failure, "sharding": test_sharding,
         "shard_grad_op": test_shard_grad_op}[which](Runner(rat, mpirun), d)
    finally:
        shutil.rmtree(d, ignore_errors=True)
    print("PASS")


if __name__ == "__main__":
    main()
