#!/usr/bin/env bash
# Faults of `rat train` that need a separate process (CTest tests train_sigint, train_disk_full).
#
#   train_faults.sh sigint    RAT OUT_DIR   Ctrl-C during a run: the step finishes, a checkpoint is
#                                           saved, `latest` points at it, exit status 0.
#   train_faults.sh disk_full RAT OUT_DIR   a real full disk: the run directory is a tmpfs with room
#                                           for one checkpoint but not two (private mount namespace,
#                                           `unshare -m`, needs root). The second save fails with a
#                                           message naming ENOSPC, no partial checkpoint is left, and
#                                           the first checkpoint resumes. Exits 77 (CTest: skipped)
#                                           where mounting is not permitted.
#   train_faults.sh file_limit RAT OUT_DIR  the same failure without privileges, so it runs
#                                           everywhere: RLIMIT_FSIZE (ulimit -f) below the size of
#                                           a checkpoint's optimizer state, SIGXFSZ ignored, so the
#                                           write fails with EFBIG. The first save fails with a
#                                           message naming the checkpoint and the error, exit
#                                           non-zero, no temporary file or half checkpoint left,
#                                           no `latest`; the same run then completes without the
#                                           limit.
set -euo pipefail
mode=$1
rat=$(realpath "$2")
out=$3
rm -rf "$out"
mkdir -p "$out"
cd "$out"

fail() { echo "FAILED: $*" >&2; exit 1; }

# A learnable stream of 20000 uint16 tokens (vocab 64, document end 2), as in test_train.cc.
/usr/bin/python3 - <<'EOF'
import numpy as np
rng = np.random.default_rng(1)
pat = 3 + rng.integers(0, 61, 97)
i = np.arange(20000)
t = np.where(i % 50 == 49, 2, pat[i % 97]).astype("<u2")
t.tofile("train.bin")
t[:2000].tofile("val.bin")
EOF

write_config() {  # $1 = max_steps, $2 = save_interval
  cat > exp.yaml <<EOF
data: {seq_len: 24, vocab_size: 64, num_bytes: 2, ignore_input_index: 2, batch_size: 2,
       global_batch_size: 4,
       train: {_name_: lm_ordered, tokenized_file_path: $PWD/train.bin},
       val: {_name_: lm_ordered, tokenized_file_path: $PWD/val.bin}, val_samples: 8}
model:
  backbone: {_name_: sequence, num_layers: 2, d_model: 32, interleave_step: 1,
    seq_cell: {_name_: rat, d_head: 8, ngroups: 2, chunk_size: 5},
    hidden_cell: {_name_: ffn, d_ffn: 64, act_fn: gelu, bias: false}}
  embedding: {vocab_size: 64, pe: {_name_: interrope, base: 10000}}
task: {tie_embedding: true, ignore_index: -100}
optim:
  optimizer: {_name_: adamw, lr: 3.0e-3, weight_decay: 0.1, betas: [0.9, 0.95], eps: 1.0e-8}
  lr_scheduler: {_name_: cosine, warmup_iter: 0.2, eta_min: 1.0e-6}
trainer: {seed: 7, dtype: float32, max_steps: $1, gradient_clipping: 1.0, log_interval: 1,
  eval_interval: 0, save_checkpoint: true, load_checkpoint: false, save_interval: $2,
  save_dir: $PWD/run}
EOF
}

loss_lines() { grep -c '"loss"' "$1" || true; }

case $mode in
sigint)
  # 100000 steps would take hours: the run only ends through SIGINT. No periodic checkpoint
  # (save_interval 0.5), so the one found afterwards is the interrupt's.
  write_config 100000 0.5
  OMP_NUM_THREADS=1 "$rat" train exp.yaml --quiet > train.out 2> train.err &
  pid=$!
  for _ in $(seq 600); do
    [[ -f run/metrics.jsonl ]] && (( $(loss_lines run/metrics.jsonl) >= 3 )) && break
    kill -0 $pid 2>/dev/null || fail "rat train exited early: $(cat train.err)"
    sleep 0.1
  done
  kill -INT $pid
  for _ in $(seq 300); do kill -0 $pid 2>/dev/null || break; sleep 0.1; done
  if kill -0 $pid 2>/dev/null; then kill -KILL $pid; fail "still running 30 s after SIGINT"; fi
  rc=0
  wait $pid || rc=$?
  cat train.out train.err
  (( rc == 0 )) || fail "exit status $rc after SIGINT, want 0"
  n=$(sed -n 's/^interrupted after step \([0-9]*\);.*/\1/p' train.out)
  [[ -n $n ]] || fail "no 'interrupted after step N' line"
  (( n >= 3 && n < 100000 )) || fail "interrupted at step $n"
  want=$(printf 'checkpoints/step-%08d' "$n")
  [[ $(readlink run/latest) == "$want" ]] || fail "latest -> $(readlink run/latest), want $want"
  (( $(loss_lines run/metrics.jsonl) == n )) || fail "metrics.jsonl has $(loss_lines run/metrics.jsonl) steps, want $n"
  grep -q "\"step\": *$n" run/latest/trainer_state.json || fail "trainer_state.json: $(cat run/latest/trainer_state.json)"
  "$rat" eval --model run/latest --data val.bin --max-samples 4 || fail "latest is not a usable model directory"
  echo "OK: SIGINT after step $n saved $want and exited 0"
  ;;
disk_full)
  write_config 8 0.25   # a checkpoint every 2 steps, about 260 KB each
  mkdir run
  if ! unshare -m true 2>/dev/null; then echo "skip: unshare -m not permitted"; exit 77; fi
  # Inside a private mount namespace: run/ is a 400 KB tmpfs, room for one checkpoint only.
  rc=0
  unshare -m bash -c '
    set -u
    mount -t tmpfs -o size=400k tmpfs run || exit 77
    "$0" train exp.yaml --quiet > train.out 2> train.err
    echo $? > rc
    cp -a run saved   # the tmpfs vanishes with the namespace
  ' "$rat" || rc=$?
  (( rc == 77 )) && { echo "skip: mounting a tmpfs is not permitted"; exit 77; }
  (( rc == 0 )) || fail "namespace script failed ($rc)"
  cat train.out train.err
  (( $(cat rc) != 0 )) || fail "rat train succeeded on a full disk"
  grep -q "saving checkpoint step-00000004 failed" train.err || fail "error should name the checkpoint being saved"
  grep -q "No space left on device" train.err || fail "error should name ENOSPC"
  grep -q "previous checkpoint is unchanged" train.err || fail "error should say the previous checkpoint is kept"
  [[ $(readlink saved/latest) == checkpoints/step-00000002 ]] || fail "latest -> $(readlink saved/latest)"
  [[ -z $(find saved -name '*.tmp') ]] || fail "temporary files left: $(find saved -name '*.tmp')"
  # The kept checkpoint is whole: the run resumes from it on a disk with room.
  rm -rf run && mv saved run
  "$rat" train exp.yaml trainer.load_checkpoint=true --quiet > resume.out 2>&1 || { cat resume.out; fail "resume failed"; }
  grep -q "resumed from .*step-00000002 at step 2" resume.out || fail "did not resume at step 2: $(cat resume.out)"
  [[ $(readlink run/latest) == checkpoints/step-00000008 ]] || fail "resumed run ended at $(readlink run/latest)"
  echo "OK: full disk at step 4 kept step 2, which resumed to step 8"
  ;;
file_limit)
  write_config 8 0.25   # a checkpoint every 2 steps; optimizer.safetensors about 170 KB
  rc=0
  # 100 blocks of 1024 bytes: metrics.jsonl and the config fit, a checkpoint does not.
  ( trap '' XFSZ; ulimit -f 100; exec "$rat" train exp.yaml --quiet > train.out 2> train.err ) || rc=$?
  cat train.out train.err
  (( rc != 0 )) || fail "rat train succeeded with every checkpoint too large to write"
  (( rc < 128 )) || fail "rat train died of a signal ($rc) instead of reporting the failed write"
  grep -q "saving checkpoint step-00000002 failed" train.err || fail "error should name the checkpoint being saved"
  grep -q "File too large" train.err || fail "error should name EFBIG"
  [[ -z $(find run -name '*.tmp*') ]] || fail "temporary files left: $(find run -name '*.tmp*')"
  [[ ! -e run/latest ]] || fail "latest exists after the only save failed"
  [[ -z $(ls run/checkpoints 2>/dev/null) ]] || fail "checkpoints left: $(ls run/checkpoints)"
  (( $(wc -l < train.err) <= 3 )) || fail "more than a short message on stderr"
  rm -rf run
  "$rat" train exp.yaml --quiet > again.out 2>&1 || { cat again.out; fail "the same run without the limit failed"; }
  [[ $(readlink run/latest) == checkpoints/step-00000008 ]] || fail "unlimited run ended at $(readlink run/latest)"
  echo "OK: a file size limit failed the first save cleanly (EFBIG named, nothing left half-written)"
  ;;
*)
  fail "unknown mode '$mode' (sigint | disk_full | file_limit)"
  ;;
esac
