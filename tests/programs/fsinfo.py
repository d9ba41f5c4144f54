"""File-system calls of issue 11 through Python, compared with the host:
statvfs/fstatvfs, fchdir, readlink of /proc/self/fd/N, many small writes
(behind the program on a node) read back whole, and, given a directory on a
full file system, that the failure of a write comes back (at a write,
fsync or close)."""
import errno
import hashlib
import os
import sys

st = os.statvfs(".")
print("statvfs", st.f_bsize, st.f_frsize, st.f_namemax, st.f_blocks, st.f_flag)
top = os.open(".", os.O_RDONLY | os.O_DIRECTORY)
print("fstatvfs", os.fstatvfs(top).f_namemax)
os.makedirs("sub", exist_ok=True)
sub = os.open("sub", os.O_RDONLY | os.O_DIRECTORY)
os.fchdir(sub)
print("cwd after fchdir", os.getcwd())
with open("inner.txt", "w") as f:
    f.write("inside sub\n")
os.fchdir(top)
with open("sub/inner.txt") as f:
    print("read back", f.read().strip())
fd = os.open("sub/inner.txt", os.O_RDONLY)
print("/proc/self/fd link", os.readlink(f"/proc/self/fd/{fd}"))
os.close(fd)

# Many small unbuffered writes, fsync, then the file read back whole.
want = hashlib.sha256()
fd = os.open("many.out", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
for i in range(2000):
    chunk = b"%06d " % i * 512
    want.update(chunk)
    os.write(fd, chunk)
os.fsync(fd)
os.close(fd)
with open("many.out", "rb") as f:
    same = hashlib.sha256(f.read()).hexdigest() == want.hexdigest()
print("written", os.path.getsize("many.out"), "bytes, read back equal:", same)
os.unlink("many.out")

if len(sys.argv) > 1:
    fd = os.open(os.path.join(sys.argv[1], "fill"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    failed = None
    try:
        for i in range(256):
            os.write(fd, b"x" * 4096)
        os.fsync(fd)
    except OSError as e:
        failed = e.errno
    try:
        os.close(fd)
    except OSError as e:
        failed = failed or e.errno
    print("full file system:", errno.errorcode.get(failed, failed))
