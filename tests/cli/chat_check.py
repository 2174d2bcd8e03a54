"""`rat chat` end to end on a model trained here in seconds.

- state kept == history re-read: every greedy reply equals `rat generate --greedy` on the whole
  conversation rendered by the chat template (piped stdin, then the same through a terminal);
- /save, /reset, /load: a loaded conversation continues exactly as the saved one would; the
  files of the piped and the terminal session are the same bytes; bad files (missing, not a slot
  file, corrupt, another --ctx, another model) are refused in one line, the conversation goes on
  unchanged;
- a real pseudo-terminal (pty.fork: the child's controlling terminal): line editing (Ctrl-C at
  the prompt clears the line, the up arrow recalls history), Ctrl-C stops a long streaming reply
  and the session goes on, Ctrl-D quits with status 0.

usage: chat_check.py RAT WORKDIR
"""
import json
import os
import pty
import re
import select
import shutil
import signal
import struct
import sys
import time

RAT, WORK = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
ENV = dict(os.environ, OMP_NUM_THREADS="1", TERM="xterm", INPUTRC="/dev/null")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "pylib"))
import harness  # noqa: E402

check = harness.Checks()
failures = check.failures


def rat(*args, ok=True, stdin=None):
    return harness.run(RAT, *args, cwd=WORK, ok=ok, stdin=stdin, env=ENV, timeout=120)


shutil.rmtree(WORK, ignore_errors=True)
harness.write_docs(os.path.join(WORK, "text"),
                   line=lambda k: f"### Question:\nWhat is the pass key {k // 25}{k % 25}?\n"
                   f"### Answer:\nThe pass key is {10000 + 37 * k}. The grass is green.\n")
harness.tokenize(RAT, WORK)
harness.train(RAT, WORK, steps=300, log_interval=100, eval_interval=300)
M = "run/latest"
check(os.path.exists(os.path.join(WORK, M, "tokenizer.model")), "the run has its tokenizer")

# The default template (serve/api.h): the prompt format of `rat sft-data`.
USER, GEN, SUFFIX, STOP = "### Question:\n{}\n", "### Answer:\n", "\n", "### Question:"
N, CTX = "64", "512"  # replies end at the stop string (the model writes the next question)
turns = ["What is the pass key 37?", "and the grass?", "What is the pass key 512?"]


def expected_replies(messages, system=""):
    """Each reply by `rat generate --greedy` on the whole conversation so far, re-read."""
    text, out = (system + "\n" if system else ""), []
    for m in messages:
        text += USER.format(m) + GEN
        p = rat("generate", "-m", M, "--greedy", "-n", N, "--stop", STOP, "--json", "-p", text)
        reply = json.loads(p.stdout)["outputs"][0]["text"]
        out.append(reply)
        text += reply + SUFFIX
    return out


def chat(stdin, *extra, ok=True):
    return rat("chat", "-m", M, "--greedy", "-n", N, "-c", CTX, *extra, stdin=stdin, ok=ok)


def notes(stderr):
    """stderr without the warning that -c 512 is past the trained 64 positions."""
    return [l for l in stderr.splitlines() if l.strip() and not l.startswith("warning:")]


def replies_text(replies):
    return "".join(r + "\n" for r in replies)


# --- piped stdin: state kept == history re-read ----------------------------------------
want = expected_replies(turns)
check(any(r.strip() for r in want), f"the model says something: {want}")
p = chat("\n".join(turns) + "\n")
check(p.stdout == replies_text(want),
      f"piped chat = generate on the re-read history:\n{p.stdout!r}\n{replies_text(want)!r}")
want_sys = expected_replies(turns[:2], system="You are terse.")
p = chat("\n".join(turns[:2]) + "\n", "--system", "You are terse.")
check(p.stdout == replies_text(want_sys), f"--system: {p.stdout!r} vs {want_sys!r}")

# /save after two turns, /reset (a new conversation answers turn 1 as the first did), /load, and
# the third turn continues the saved conversation exactly.
p = chat(f"{turns[0]}\n{turns[1]}\n/save piped.slot\n/reset\n{turns[0]}\n/load piped.slot\n"
         f"{turns[2]}\n")
check(p.stdout == replies_text([want[0], want[1], want[0], want[2]]),
      f"/save, /reset, /load continue exactly: {p.stdout!r}")
check(p.returncode == 0 and "saved" in p.stderr and "loaded" in p.stderr,
      "/save and /load say what they did: " + p.stderr)
slot = os.path.join(WORK, "piped.slot")
check(os.path.exists(slot) and not [f for f in os.listdir(WORK) if ".tmp" in f],
      "the slot file is written atomically (no temporary left)")

# Bad files: one line each, the conversation unchanged, exit status 1 for a script.
with open(slot, "rb") as f:
    good = bytearray(f.read())
# The saved tokens (serve/slot_file.h: a 48-byte header, then n i32 ids) are the tokenization of
# the rendered conversation as a whole: the stop strings' tokens were rolled back.
n_saved = struct.unpack_from("<q", good, 32)[0]
saved_ids = list(struct.unpack_from(f"<{n_saved}i", good, 48))
history = USER.format(turns[0]) + GEN + want[0] + SUFFIX + USER.format(turns[1]) + GEN + want[1]
p = rat("generate", "-m", M, "--greedy", "-n", "1", "--json", "-p", history)
check(saved_ids == json.loads(p.stdout)["outputs"][0]["prompt_ids"],
      "the state holds the re-read history's tokens, no more")
with open(os.path.join(WORK, "garbage.slot"), "wb") as f:
    f.write(b"not a slot file at all, just some bytes" * 3)
corrupt = bytearray(good)
corrupt[len(corrupt) // 2] ^= 0xFF
with open(os.path.join(WORK, "corrupt.slot"), "wb") as f:
    f.write(corrupt)
rat("chat", "-m", M, "--greedy", "-n", N, "-c", "256", stdin=f"{turns[0]}\n/save ctx256.slot\n")
shutil.copytree(os.path.join(WORK, M), os.path.join(WORK, "other_model"), symlinks=False)
with open(os.path.join(WORK, "other_model", "config.yaml"), "a") as f:
    f.write("# another model\n")
rat("chat", "-m", "other_model", "--greedy", "-n", N, "-c", CTX,
    stdin=f"{turns[0]}\n/save other.slot\n")
for name, why in [("missing.slot", "cannot open"), ("garbage.slot", "not a rat slot file"),
                  ("corrupt.slot", "checksum"), ("ctx256.slot", "--ctx 256"),
                  ("other.slot", "another model")]:
    p = chat(f"{turns[0]}\n/load {name}\n{turns[1]}\n", ok=False)
    lines = notes(p.stderr)
    check(p.returncode == 1 and len(lines) == 1 and name in lines[0] and why in lines[0],
          f"/load {name}: one line naming the file and '{why}': {p.stderr!r}")
    check(p.stdout == replies_text(want[:2]), f"/load {name} left the conversation as it was")
p = chat("/save\n/load\n/frobnicate\n/save empty.slot\n", ok=False)
lines = notes(p.stderr)
check(p.returncode == 1 and len(lines) == 4 and "FILE" in lines[0] and "FILE" in lines[1]
      and "unknown command /frobnicate" in lines[2] and "empty" in lines[3],
      "command misuse: one line each: " + p.stderr)
check(not os.path.exists(os.path.join(WORK, "empty.slot")), "an empty conversation is not saved")

# The context: a turn that does not fit is refused (one line, nothing fed), /reset recovers.
p = rat("chat", "-m", M, "--greedy", "-n", "40", "-c", "48",
        stdin=f"{turns[0]}\n{turns[1]}\n{turns[1]}\n/reset\n{turns[0]}\n", ok=False)
check("context is full" in p.stderr and "/reset" in p.stderr and p.returncode == 1,
      "a full context is refused in words: " + p.stderr)
check(p.stdout.count("\n") >= 2 and p.stdout.endswith(replies_text(
    [rat("chat", "-m", M, "--greedy", "-n", "40", "-c", "48", stdin=turns[0] + "\n").stdout[:-1]])),
      "after /reset the conversation starts over: " + repr(p.stdout))

# Flags are checked before the model is read.
for bad, what in [(["-n", "0"], "--max-new-tokens"), (["--top-p", "0"], "top-p"),
                  (["-c", "-1"], "--ctx")]:
    p = rat("chat", "-m", M, *bad, ok=False, stdin="")
    check(p.returncode != 0 and what in p.stderr and len(p.stderr.splitlines()) == 1,
          f"chat {bad}: {p.stderr!r}")
p = rat("chat", "-m", "no_such_dir", ok=False, stdin="")
check(p.returncode != 0 and "no_such_dir" in p.stderr, "a missing model dir: " + p.stderr)
check(rat("help", "chat").stdout == rat("chat", "--help").stdout and "/save" in
      rat("help", "chat").stdout, "rat help chat")


# --- a real terminal -------------------------------------------------------------------
ANSI = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]|\x1b[=>]|\x07")


class Terminal:
    """rat chat with a pseudo-terminal as its controlling terminal, as in a shell."""

    def __init__(self, *args):
        self.pid, self.fd = pty.fork()
        if self.pid == 0:
            os.chdir(WORK)
            os.execve(RAT, [RAT, "chat", *args], ENV)
        self.raw = b""
        self.status = None
        self.mark = 0  # start of the output not yet consumed by until()

    def pump(self, timeout):
        r, _, _ = select.select([self.fd], [], [], timeout)
        if not r:
            return False
        try:
            data = os.read(self.fd, 65536)
        except OSError:
            return False
        self.raw += data
        return bool(data)

    def text(self, start=0):
        return ANSI.sub(b"", self.raw[start:]).decode("utf-8", "replace").replace("\r\n", "\n").replace("\r", "")

    def until(self, pattern, timeout=30):
        """Reads until the output since the mark matches; returns it and moves the mark."""
        end = time.time() + timeout
        while time.time() < end:
            m = re.search(pattern, self.text(self.mark), re.S)
            if m:
                out = self.text(self.mark)
                self.mark = len(self.raw)
                return out
            self.pump(0.05)
        raise TimeoutError(f"no {pattern!r} in ...{self.text(self.mark)[-600:]!r}")

    def send(self, s):
        os.write(self.fd, s.encode() if isinstance(s, str) else s)

    def turn(self, line):
        """Types a line; returns the reply (the text between the line's echo and the next prompt;
        a reply that ends its line gets no newline of rat's, so its own is not in it)."""
        self.send(line + "\r")
        out = self.until(r"\n> $")
        body = out[: -len("\n> ")]
        at = body.find(line.split("\n")[-1])
        return body[at + len(line.split("\n")[-1]) + 1:] if at >= 0 else body

    def wait(self, timeout=10):
        """The exit status; None (and the process killed) if it has not ended in time."""
        end = time.time() + timeout
        while self.status is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.status = os.waitstatus_to_exitcode(status)
            elif time.time() >= end:
                os.kill(self.pid, signal.SIGKILL)
                os.waitpid(self.pid, 0)
                self.status = "killed"
                return None
            else:
                self.pump(0.05)
        return self.status


def on_tty(reply):
    return reply[:-1] if reply.endswith("\n") else reply


t = Terminal("-m", M, "--greedy", "-n", N, "-c", CTX)
try:
    banner = t.until(r"\n> $")
    check("/help" in banner and "Ctrl-C" in banner, "the banner names /help and Ctrl-C: " + banner)
    t.send("some half-typed line")
    t.until("half-typed line")
    t.send(b"\x03")  # Ctrl-C at the prompt: the line is dropped
    t.until(r"\n> $")
    got = [t.turn(turns[0]), t.turn(turns[1])]
    check(got == [on_tty(w) for w in want[:2]],
          f"terminal replies = re-read history: {got!r} vs {want[:2]!r}")
    t.send("/save tty.slot\r")
    t.until(r"saved .*\n> $")
    with open(os.path.join(WORK, "tty.slot"), "rb") as f:
        check(f.read() == bytes(good), "the terminal session's state is the piped one's, bytes")
    t.send("/reset\r")
    t.until(r"new conversation.*\n> $")
    t.send("/load tty.slot\r")
    t.until(r"loaded .*\n> $")
    got = t.turn(turns[2])
    check(got == on_tty(want[2]),
          f"/load in the terminal continues exactly: {got!r} vs {want[2]!r}")
    with open(os.path.join(WORK, "transcript1.txt"), "w") as f:
        f.write(t.text())
    t.send(b"\x1b[A")  # up arrow: the last line comes back for editing
    t.until(re.escape(turns[2]))
    t.send(b"\x15")  # Ctrl-U: readline's kill-line
    t.send(b"\x04")  # Ctrl-D on the empty line
    check(t.wait() == 0, "Ctrl-D quits with status 0:\n" + t.text())
finally:
    t.wait(0)

# Ctrl-C in the middle of a long reply (no length limit, a large context). The model learnt to
# start the next question after its answer, the default template's stop string; a template of
# its own (chat_template.json) whose user turn the model never writes lets the reply run on.
shutil.copytree(os.path.join(WORK, M), os.path.join(WORK, "long_model"))
with open(os.path.join(WORK, "long_model", "chat_template.json"), "w") as f:
    json.dump({"user": "<<{content}>>\n"}, f)
t = Terminal("-m", "long_model", "--greedy", "-n", "-1", "-c", "200000")
try:
    t.until(r"\n> $")
    t.send("The pass key is\r")
    t.until(r"The pass key is\n.{40}")  # the reply is streaming
    t0 = time.time()
    t.send(b"\x03")
    out = t.until(r"stopped.*\n> $", timeout=20)
    check(time.time() - t0 < 10, "Ctrl-C stops the reply at once")
    check("context is full" not in out, "the reply was stopped, it did not run out: " + out)
    t.send("/save long.slot\r")
    m = re.search(r"saved (\d+) tokens", t.until(r"saved .*\n> $"))
    check(m and int(m.group(1)) > 40, "the stopped reply stays in the conversation")
    t.send("hello\r")  # the session goes on: another reply streams, and stops as well
    t.until(r"hello\n.{40}")
    t.send(b"\x03")
    t.until(r"stopped.*\n> $", timeout=20)
    t.send(b"/exit\r")
    check(t.wait() == 0, "/exit quits with status 0")
finally:
    t.wait(0)

# The transcript for the note (docs): what a user sees.
with open(os.path.join(WORK, "transcript2.txt"), "w") as f:
    f.write(t.text())

if failures:
    sys.exit(f"{len(failures)} check(s) failed")
print("chat_check: all checks passed")
