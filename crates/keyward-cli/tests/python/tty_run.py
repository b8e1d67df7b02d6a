#!/usr/bin/env python3
"""Runs a command on a pseudo-terminal and answers its prompts (standard library only).

    tty_run.py PROMPT ANSWER [PROMPT ANSWER ...] -- COMMAND ARGS...

Each ANSWER (plus a newline) is typed once PROMPT has appeared on the terminal. A PROMPT
written `noecho:PROMPT` also waits (up to 5 s) for the program to turn the terminal's echo
off, as a person would only start typing a password once asked; if echo stays on, the answer
is typed anyway and shows in the output.
Prints {"code": exit code, "output": everything the terminal showed} as JSON.
"""
import json
import os
import pty
import select
import signal
import sys
import termios
import time


def wait_for_echo_off(fd):
    until = time.time() + 5
    while time.time() < until and termios.tcgetattr(fd)[3] & termios.ECHO:
        time.sleep(0.01)


def main():
    sep = sys.argv.index("--")
    pairs, command = sys.argv[1:sep], sys.argv[sep + 1:]
    steps = list(zip(pairs[0::2], pairs[1::2]))
    pid, fd = pty.fork()
    if pid == 0:
        os.execvp(command[0], command)
    out, pos, deadline = b"", 0, time.time() + 30
    while time.time() < deadline:
        if steps:
            prompt, answer = steps[0]
            quiet = prompt.startswith("noecho:")
            prompt = prompt.removeprefix("noecho:")
            found = out.find(prompt.encode(), pos)
            if found >= 0:
                pos = found + len(prompt)
                if quiet:
                    wait_for_echo_off(fd)
                os.write(fd, (answer + "\n").encode())
                steps.pop(0)
                continue
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            try:
                data = os.read(fd, 4096)
            except OSError:  # the child closed the terminal
                data = b""
            if not data:
                break
            out += data
    else:
        os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    print(json.dumps({"code": os.waitstatus_to_exitcode(status), "output": out.decode(errors="replace"),
                      "unanswered": [p for p, _ in steps]}))


if __name__ == "__main__":
    main()
