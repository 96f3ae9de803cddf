# Managed by armstack.deploy.hardening.
"""check-audit-rules FILE: check an audit rules file without loading it.

auditctl has no dry-run, and loading rules needs a real kernel (not a
container), so a broken rule would only show at boot, when augenrules stops at
the first bad line and the rest of the rules never load. This checks each line
the way auditctl parses it: known options, watch permissions, list/action
pairs, -F fields and operators, the arch before -S, and every syscall name
resolved with ausyscall for that arch. Exit 0 when every line passes.
"""
import os
import platform
import re
import shlex
import subprocess
import sys

ACTIONS = {"always", "never"}
LISTS = {"task", "exit", "user", "exclude", "filesystem", "io_uring"}
FIELDS = {
    "a0", "a1", "a2", "a3", "arch", "auid", "devmajor", "devminor", "dir", "egid", "euid",
    "exe", "exit", "fsgid", "fstype", "fsuid", "filetype", "gid", "inode", "key", "loginuid",
    "msgtype", "obj_gid", "obj_uid", "path", "perm", "pers", "pid", "ppid", "saddr_fam",
    "sessionid", "sgid", "subj_clr", "subj_role", "subj_sen", "subj_type", "subj_user",
    "success", "suid", "uid", "obj_user", "obj_role", "obj_type", "obj_lev_low", "obj_lev_high",
}
FIELD_RE = re.compile(r"^([a-z0-9_]+)(!=|<=|>=|&=|=|<|>|&)(.+)$")
MACHINE = platform.machine()
ARCH32 = {"x86_64": "i386", "aarch64": "arm"}


def syscall_known(arch, name):
    table = MACHINE if arch in ("b64", MACHINE) else ARCH32.get(MACHINE, arch)
    if name == "all":
        return True
    res = subprocess.run(["ausyscall", table, name, "--exact"], capture_output=True, text=True, check=False)
    return res.returncode == 0 and res.stdout.strip().isdigit()


def check_rule(tokens):
    errors = []
    opt = tokens[0]
    args = tokens[1:]
    if opt in ("-D", "--loginuid-immutable"):
        return errors if not args else ["%s takes no argument" % opt]
    if opt in ("-b", "--backlog_wait_time", "-r"):
        return errors if len(args) == 1 and args[0].isdigit() else ["%s needs one number" % opt]
    if opt in ("-f", "-e"):
        return errors if args in (["0"], ["1"], ["2"]) else ["%s needs 0, 1 or 2" % opt]
    if opt == "-w":
        if not args or not args[0].startswith("/"):
            return ["-w needs an absolute path"]
        rest = args[1:]
        while rest:
            if rest[0] == "-p" and len(rest) > 1:
                if not rest[1] or set(rest[1]) - set("rwxa"):
                    errors.append("-p permissions must be from rwxa: %r" % rest[1])
            elif rest[0] == "-k" and len(rest) > 1:
                if len(rest[1]) > 255:
                    errors.append("key too long")
            else:
                errors.append("unexpected %r after -w" % rest[0])
                break
            rest = rest[2:]
        return errors
    if opt in ("-a", "-A"):
        if not args:
            return ["%s needs list,action" % opt]
        parts = set(args[0].split(","))
        if len(parts) != 2 or not (parts & ACTIONS) or not (parts & LISTS):
            errors.append("bad list,action %r" % args[0])
        arch = None
        syscalls = []
        rest = args[1:]
        while rest:
            if len(rest) < 2:
                errors.append("option %r without a value" % rest[0])
                break
            flag, value = rest[0], rest[1]
            if flag == "-F":
                m = FIELD_RE.match(value)
                if not m or m.group(1) not in FIELDS:
                    errors.append("bad field %r" % value)
                elif m.group(1) == "arch":
                    arch = m.group(3)
                    if arch not in ("b64", "b32", MACHINE):
                        errors.append("unknown arch %r" % arch)
            elif flag == "-S":
                if arch is None:
                    errors.append("-S before -F arch=: the syscall table would be the default arch's")
                syscalls += [(arch or "b64", s) for s in value.split(",")]
            elif flag in ("-k", "-C"):
                pass
            else:
                errors.append("unexpected %r" % flag)
            rest = rest[2:]
        for sc_arch, name in syscalls:
            if not syscall_known(sc_arch, name):
                errors.append("syscall %r unknown for arch %s on %s" % (name, sc_arch, MACHINE))
        return errors
    return ["unknown option %r" % opt]


def main(path):
    failures = 0
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            try:
                tokens = shlex.split(line)
            except ValueError as exc:
                print("%s:%d: %s" % (path, number, exc))
                failures += 1
                continue
            for error in check_rule(tokens):
                print("%s:%d: %s: %s" % (os.path.basename(path), number, error, line))
                failures += 1
    if failures:
        print("%d problem(s): these rules would stop augenrules at boot" % failures)
        return 1
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print("usage: check-audit-rules FILE", file=sys.stderr)
        sys.exit(2)
    sys.exit(main(sys.argv[1]))
