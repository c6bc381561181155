#!/usr/bin/env python3
"""CPU time per message by thread, for bench/audit_windows.sh's windows.

  window_cpu.py snap gateway=<pid> [<name>=<pid> ...]
      One line of `group=nanoseconds` counters: the gateway's threads by name (the runtime's
      workers together), every other process named on the command line as a whole (all its
      threads), and `machine`, the busy time of all CPUs (/proc/stat: user, nice, system,
      irq, softirq, steal), which holds everything running here.
  window_cpu.py summarise <file>
      <file> holds one line per window, `<off|on> <messages> <snap at start> | <snap at end>`,
      the windows of a pair one after the other. Prints, per group, the CPU per message with
      auditing off and on (all windows of a side together) and the mean of the pairs'
      differences with its 95% interval.

Thread times come from /proc/<pid>/task/<tid>/schedstat (nanoseconds on a CPU, kept by the
scheduler); a thread that ended within a window is missing from its end and is left out of
that window. The machine's figure has the kernel's tick resolution (10 ms) and is only
meaningful summed over many windows.
"""
import math
import os
import statistics
import sys


def thread_group(comm):
    # tokio names its workers `tokio-runtime-worker`, cut by the kernel to 15 characters.
    return "workers" if comm.startswith("tokio-r") else comm


def snap(pairs):
    counters = {}

    def add(key, ns):
        counters[key] = counters.get(key, 0) + ns

    for arg in pairs:
        name, _, pid = arg.partition("=")
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tids:
            try:
                with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                    ns = int(f.read().split()[0])
                with open(f"/proc/{pid}/task/{tid}/comm") as f:
                    comm = f.read().strip()
            except (OSError, ValueError, IndexError):
                continue
            if name == "gateway":
                add("gateway/" + thread_group(comm), ns)
            add(name, ns)
    with open("/proc/stat") as f:
        cpu = [int(v) for v in f.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal
    busy = cpu[0] + cpu[1] + cpu[2] + cpu[5] + cpu[6] + cpu[7]
    add("machine", busy * 1_000_000_000 // os.sysconf("SC_CLK_TCK"))
    print(" ".join(f"{k}={v}" for k, v in counters.items()))


def parse(path):
    windows = []
    with open(path) as f:
        for line in f:
            words = line.split()
            bar = words.index("|")
            start = dict(w.split("=", 1) for w in words[2:bar])
            end = dict(w.split("=", 1) for w in words[bar + 1:])
            used = {k: int(v) - int(start[k]) for k, v in end.items() if k in start}
            windows.append((words[0], int(words[1]), used))
    return windows


def summarise(path):
    windows = parse(path)
    groups = sorted({k for _, _, used in windows for k in used},
                    key=lambda k: (k != "machine", not k.startswith("gateway"), k))
    pairs = []
    for a, b in zip(windows[0::2], windows[1::2]):
        off, on = (a, b) if a[0] == "off" else (b, a)
        if off[0] == "off" and on[0] == "on" and off[1] > 0 and on[1] > 0:
            pairs.append((off, on))
    if not pairs:
        sys.exit("no pair of an off and an on window with messages")
    print(f"CPU per message (µs), {len(pairs)} pairs; change: mean of the pairs' differences, "
          "95% interval")
    print(f"  {'':28} {'off':>8} {'on':>8} {'change':>8}   interval")
    for g in groups:
        sides = {}
        for side in ("off", "on"):
            ns = sum(w[2].get(g, 0) for p in pairs for w in p if w[0] == side)
            msgs = sum(w[1] for p in pairs for w in p if w[0] == side)
            sides[side] = ns / msgs / 1000
        diffs = [on[2].get(g, 0) / on[1] / 1000 - off[2].get(g, 0) / off[1] / 1000
                 for off, on in pairs]
        mean = statistics.mean(diffs)
        half = 1.96 * statistics.stdev(diffs) / math.sqrt(len(diffs)) if len(diffs) > 1 else 0
        print(f"  {g:28} {sides['off']:8.2f} {sides['on']:8.2f} {mean:+8.2f}   "
              f"{mean - half:+.2f} to {mean + half:+.2f}")


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "snap":
        snap(sys.argv[2:])
    elif len(sys.argv) == 3 and sys.argv[1] == "summarise":
        summarise(sys.argv[2])
    else:
        sys.exit(__doc__)
