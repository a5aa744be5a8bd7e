"""Python's side of `cargo bench --bench report`: one sample of one case.

usage: python3 report.py CASE N HEAP_MIB
prints: SECONDS PEAK_RSS_BYTES BASE_RSS_BYTES
  SECONDS covers the N operations only, not start-up. The peak is VmHWM (this process's own
  address space; ru_maxrss would include the harness's, see benches/common.rs), the base the
  RSS (VmRSS) just before the first operation.
"""
import os
import subprocess
import sys
import time


def status_field(name):
    """A kB field of /proc/self/status, in bytes."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(name + ":"):
                return int(line.split()[1]) * 1024
    raise SystemExit("no " + name + " in /proc/self/status")


def main():
    case, n, heap_mib = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    heap = bytearray(b"\x01") * (heap_mib << 20) if heap_mib else None
    base = status_field("VmRSS")
    start = time.perf_counter()
    if case in ("spawn", "spawn-heap"):
        for _ in range(n):
            subprocess.run(["/bin/true"], check=True)
    elif case == "small":
        for _ in range(n):
            out = subprocess.check_output(["/bin/echo", "hi"])
            assert out == b"hi\n"
    elif case == "big":
        size = n
        out = subprocess.run(["head", "-c", str(size), "/dev/zero"], capture_output=True, check=True)
        assert len(out.stdout) == size
    elif case == "fanout":
        procs = [subprocess.Popen(["/bin/echo", "hello"], stdout=subprocess.PIPE) for _ in range(n)]
        for p in procs:
            out, _ = p.communicate()
            assert out == b"hello\n" and p.returncode == 0
    elif case == "echo":
        p = subprocess.Popen(["cat"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        for i in range(n):
            p.stdin.write(b"line of text\n")
            p.stdin.flush()
            assert p.stdout.readline() == b"line of text\n"
        p.stdin.close()
        p.wait()
    else:
        sys.exit("unknown case " + case)
    secs = time.perf_counter() - start
    del heap
    print(secs, status_field("VmHWM"), base)


main()
