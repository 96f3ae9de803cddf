# Copyright: (c) 2026, armstack.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""roles/hardening/files/check-audit-rules.py: the `validate:` of the audit
rules file (auditctl has no dry run, and a container cannot load rules).

A stub `ausyscall` on PATH answers from a small syscall table per arch (the
real numbers of x86_64 and i386) and records what it was asked. The rules
the role renders from audit.rules.j2 are checked too, for both architectures."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys

import jinja2
import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
ROLE = os.path.join(ROOT, "roles", "hardening")
SCRIPT = os.path.join(ROLE, "files", "check-audit-rules.py")

# ausyscall TABLE NAME --exact: the syscalls the tests and the role name, with their numbers.
TABLES = {
    "x86_64": {"open": 2, "adjtimex": 159, "settimeofday": 164, "clock_settime": 227, "init_module": 175,
               "finit_module": 313, "delete_module": 176, "execve": 59},
    "i386": {"open": 5, "stime": 25, "adjtimex": 124, "settimeofday": 79, "clock_settime": 264, "init_module": 128,
             "finit_module": 350, "delete_module": 129, "execve": 11},
    "aarch64": {"adjtimex": 171, "settimeofday": 170, "clock_settime": 112, "init_module": 105, "finit_module": 273,
                "delete_module": 106, "execve": 221},
}


@pytest.fixture
def ausyscall(tmp_path, monkeypatch):
    """A stub ausyscall first on PATH; returns the file its calls are logged to."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    log = tmp_path / "ausyscall.log"
    cases = "\n".join(f"    '{table} {name}') echo {number} ;;" for table, names in TABLES.items() for name, number in names.items())
    stub = bindir / "ausyscall"
    stub.write_text(
        "#!/bin/sh\n"
        f'echo "$*" >> {log}\n'
        '[ "$3" = --exact ] || exit 64\n'
        'case "$1 $2" in\n'
        f"{cases}\n"
        "    *) echo \"Unknown syscall $2 using $1 lookup table\" >&2; exit 1 ;;\n"
        "esac\n",
        encoding="utf-8",
    )
    stub.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    return log


@pytest.fixture
def checker(ausyscall):
    """The script's module, loaded as the x86_64 machine it runs on in the test bed."""
    import importlib.util  # pylint: disable=import-outside-toplevel

    spec = importlib.util.spec_from_file_location("check_audit_rules", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.MACHINE = "x86_64"
    return module


def run(path, machine=None):
    """The program on `path`, as the role's validate runs it (PATH from the environment, with the stub)."""
    argv = [sys.executable, SCRIPT, str(path)]
    if machine:
        code = ("import platform, runpy, sys; platform.machine = lambda: %r; sys.argv = sys.argv[1:]; "
                "runpy.run_path(sys.argv[0], run_name='__main__')" % machine)
        argv = [sys.executable, "-c", code, SCRIPT, str(path)]
    return subprocess.run(argv, capture_output=True, text=True, check=False, timeout=60)


def tokens(line):
    return shlex.split(line)


# --- one rule at a time -----------------------------------------------------------------

@pytest.mark.parametrize("line", [
    "-D", "--loginuid-immutable", "-b 8192", "--backlog_wait_time 60000", "-r 100", "-f 1", "-e 2", "-e 0",
    "-w /etc/passwd -p wa -k identity", "-w /etc/sudoers.d/", "-w /run/docker.sock -p rwxa -k docker-socket",
    "-a always,exit -F arch=b64 -S adjtimex,settimeofday,clock_settime -k time-change",
    "-a exit,always -F arch=b32 -S stime -k time-change",
    "-A always,exit -F arch=b64 -S all -F auid>=1000 -F auid!=4294967295 -k all",
    "-a never,exclude -F msgtype=CWD",
    "-a always,exit -F arch=x86_64 -S execve -F euid=0 -C uid!=euid -k root-exec",
    "-a always,exit -F path=/usr/bin/sudo -F perm=x -k privileged",
])
def test_a_good_rule_passes(checker, line):
    assert checker.check_rule(tokens(line)) == []


@pytest.mark.parametrize("line, error", [
    ("-D now", "-D takes no argument"),
    ("-b", "-b needs one number"),
    ("-b lots", "-b needs one number"),
    ("-r 1 2", "-r needs one number"),
    ("-f 3", "-f needs 0, 1 or 2"),
    ("-e", "-e needs 0, 1 or 2"),
    ("-w etc/passwd -p wa", "-w needs an absolute path"),
    ("-w", "-w needs an absolute path"),
    ("-w /etc/passwd -p wz -k identity", "-p permissions must be from rwxa: 'wz'"),
    ("-w /etc/passwd -p '' -k identity", "-p permissions must be from rwxa: ''"),
    ("-w /etc/passwd -k " + "k" * 256, "key too long"),
    ("-w /etc/passwd -F arch=b64", "unexpected '-F' after -w"),
    ("-a", "-a needs list,action"),
    ("-a always -S all", "bad list,action 'always'"),
    ("-a always,sometimes", "bad list,action 'always,sometimes'"),
    ("-a exit,task", "bad list,action 'exit,task'"),
    ("-a always,exit -F arch=b64 -S", "option '-S' without a value"),
    ("-a always,exit -F colour=red", "bad field 'colour=red'"),
    ("-a always,exit -F auid", "bad field 'auid'"),
    ("-a always,exit -F arch=mips -S all", "unknown arch 'mips'"),
    ("-a always,exit -F arch=b64 -X open", "unexpected '-X'"),
    ("-x /etc/passwd", "unknown option '-x'"),
])
def test_a_bad_rule_is_refused_with_the_reason(checker, line, error):
    assert error in checker.check_rule(tokens(line))


def test_a_syscall_before_the_arch_is_refused(checker):
    errors = checker.check_rule(tokens("-a always,exit -S adjtimex -F arch=b64 -k time-change"))
    assert errors == ["-S before -F arch=: the syscall table would be the default arch's"]


def test_each_syscall_is_looked_up_in_its_arch_table(checker, ausyscall):
    assert checker.check_rule(tokens("-a always,exit -F arch=b64 -S adjtimex,open -F arch=b32 -S stime")) == []
    assert ausyscall.read_text(encoding="utf-8").splitlines() == [
        "x86_64 adjtimex --exact", "x86_64 open --exact", "i386 stime --exact"]


def test_a_syscall_the_arch_does_not_have_is_refused(checker):
    # stime exists for 32-bit programs only: a b64 rule naming it stops augenrules.
    errors = checker.check_rule(tokens("-a always,exit -F arch=b64 -S adjtimex,stime -k time-change"))
    assert errors == ["syscall 'stime' unknown for arch b64 on x86_64"]


def test_all_is_not_looked_up(checker, ausyscall):
    assert checker.check_rule(tokens("-a always,exit -F arch=b64 -S all")) == []
    assert not ausyscall.exists()


def test_on_arm64_b32_means_the_arm_table(checker, ausyscall):
    checker.MACHINE = "aarch64"
    errors = checker.check_rule(tokens("-a always,exit -F arch=b32 -S adjtimex"))
    assert errors == ["syscall 'adjtimex' unknown for arch b32 on aarch64"]
    assert ausyscall.read_text(encoding="utf-8").splitlines() == ["arm adjtimex --exact"]


# --- a whole file, as the role's validate runs it ------------------------------------------

def test_a_good_file_exits_0_silently(tmp_path, ausyscall):
    rules = tmp_path / "good.rules"
    rules.write_text("## comment\n\n   \n-D\n-b 8192\n-w /etc/passwd -p wa -k identity\n"
                     "-a always,exit -F arch=b64 -S adjtimex -k time-change\n", encoding="utf-8")
    proc = run(rules, machine="x86_64")
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", "")


def test_a_bad_file_exits_1_naming_every_bad_line(tmp_path, ausyscall):
    rules = tmp_path / "50-armstack.rules"
    rules.write_text("-w /etc/passwd -p wa -k identity\n"
                     "-w /etc/group -p wq -k identity\n"
                     "# -x commented out\n"
                     "-a always,exit -F arch=b64 -S stime -k time-change\n"
                     "-w '/etc/unterminated\n", encoding="utf-8")
    proc = run(rules, machine="x86_64")
    assert proc.returncode == 1, proc
    assert proc.stdout.splitlines() == [
        "50-armstack.rules:2: -p permissions must be from rwxa: 'wq': -w /etc/group -p wq -k identity",
        "50-armstack.rules:4: syscall 'stime' unknown for arch b64 on x86_64: -a always,exit -F arch=b64 -S stime -k time-change",
        f"{rules}:5: No closing quotation",
        "3 problem(s): these rules would stop augenrules at boot",
    ]


@pytest.mark.parametrize("argv", [[], ["a.rules", "b.rules"]])
def test_a_wrong_number_of_arguments_exits_2(argv):
    proc = subprocess.run([sys.executable, SCRIPT, *argv], capture_output=True, text=True, check=False, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "usage: check-audit-rules FILE"


# --- the rules the role writes ------------------------------------------------------------

def render_role_rules(architecture, **overrides):
    """audit.rules.j2 rendered with the role's defaults and vars (as Ansible renders templates: trim_blocks)."""
    with open(os.path.join(ROLE, "defaults", "main.yml"), encoding="utf-8") as handle:
        context = yaml.safe_load(handle)
    with open(os.path.join(ROLE, "vars", "main.yml"), encoding="utf-8") as handle:
        role_vars = yaml.safe_load(handle)
    context.update({key: role_vars[key] for key in ("_hardening_audit_time_syscalls", "_hardening_audit_module_syscalls",
                                                    "_hardening_firewall_dir")})
    context.update(ansible_managed="Ansible managed", ansible_facts={"architecture": architecture}, **overrides)
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(os.path.join(ROLE, "templates")), trim_blocks=True,
                             undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    return env.get_template("audit.rules.j2").render(context)


@pytest.mark.parametrize("architecture", ["x86_64", "aarch64"])
@pytest.mark.parametrize("overrides", [{}, {"hardening_auditd_immutable": True,
                                            "hardening_auditd_extra_rules": ["-w /etc/hosts -p wa -k hosts"]}])
def test_the_roles_rules_pass_on_each_architecture(tmp_path, ausyscall, architecture, overrides):
    rules = tmp_path / "50-armstack.rules"
    rules.write_text(render_role_rules(architecture, **overrides), encoding="utf-8")
    proc = run(rules, machine=architecture)
    assert (proc.returncode, proc.stdout) == (0, ""), proc.stdout
    asked = ausyscall.read_text(encoding="utf-8").splitlines()
    # Every syscall the role names was looked up, in the tables of the machine's arches only.
    expected_tables = {"x86_64": {"x86_64", "i386"}, "aarch64": {"aarch64"}}[architecture]
    assert {line.split()[0] for line in asked} == expected_tables
    if architecture == "x86_64":
        assert "i386 stime --exact" in asked and "x86_64 stime --exact" not in asked


def test_a_site_rule_with_a_mistake_fails_the_roles_validate(tmp_path, ausyscall):
    rules = tmp_path / "50-armstack.rules"
    extra = ["-w /etc/hosts -p wa -k hosts", "-a always,exit -S open"]
    rules.write_text(render_role_rules("x86_64", hardening_auditd_extra_rules=extra), encoding="utf-8")
    proc = run(rules, machine="x86_64")
    assert proc.returncode == 1
    assert "-S before -F arch=" in proc.stdout
    assert proc.stdout.splitlines()[-1] == "1 problem(s): these rules would stop augenrules at boot"
