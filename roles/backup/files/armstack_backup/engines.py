# Copyright: (c) 2026, armstack.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Dump, check and restore commands per database engine, run inside the container with `docker exec`.

No credential is ever on a command line (`ps` shows argv to every user):
PostgreSQL and SQLite need none here (the local socket or file); Redis with a
password reads it from a file in the container (`password_file`) into
REDISCLI_AUTH, the environment of redis-cli only;
MySQL/MariaDB read root's password from the container's own
MYSQL_ROOT_PASSWORD and get it in an option file on a file descriptor
(`--defaults-extra-file=/dev/fd/3`, a here-document of the container's shell):
not argv, and unlike MYSQL_PWD (deprecated by MySQL 8) not inherited by
anything the client starts either. The value is escaped for MySQL's option-file
syntax by shell built-ins only, so no other process ever sees it.
"""

from __future__ import annotations

EXTENSION = {"postgres": "pgdump", "mysql": "sql", "redis": "rdb", "sqlite": "sql", "command": "dump"}

# POSIX sh: an option file on fd 3 with root's password from the container's
# environment, escaped (\\, \", newline) for MySQL's option-file parser.
MYSQL_OPTION_FILE = r'''set -e
p=${MYSQL_ROOT_PASSWORD-}
[ -n "$p" ] || { echo "MYSQL_ROOT_PASSWORD is not set in the container" >&2; exit 1; }
nl=$(printf '\nx'); nl=${nl%x}
q=
while [ -n "$p" ]; do
  c=${p%"${p#?}"}; p=${p#?}
  case $c in
    \\|\") q="$q\\$c" ;;
    "$nl") q="$q\\n" ;;
    *) q="$q$c" ;;
  esac
done
exec 3<<ARMSTACK_EOF
[client]
user=root
password="$q"
ARMSTACK_EOF
unset p q
'''

# SQLite: the dump is loaded into a new file beside the live one and checked
# (no error with -bail, integrity_check ok, the sentinel the runner appends
# after the dump present: a stream cut short lacks it); only then may it replace
# the live file, in a second step.
SQLITE_SENTINEL = b"\nCREATE TABLE armstack_restore_complete (x);\n"
SQLITE_PREPARE = r'''set -e
new="$1.restoring"
rm -f "$new"
trap 'rm -f "$new"' EXIT
sqlite3 -bail "$new"
[ "$(sqlite3 "$new" 'PRAGMA integrity_check')" = ok ] || { echo "the restored database fails integrity_check" >&2; exit 1; }
[ "$(sqlite3 "$new" "SELECT count(*) FROM sqlite_master WHERE name = 'armstack_restore_complete'")" = 1 ] \
  || { echo "the dump stream ended early (no completion marker): not loaded" >&2; exit 1; }
sqlite3 "$new" 'DROP TABLE armstack_restore_complete'
trap - EXIT
'''
SQLITE_SWAP = r'''set -e
[ -s "$1.restoring" ] || { echo "$1.restoring is missing or empty: the live database is left alone" >&2; exit 1; }
if [ -e "$1" ]; then
  chown --reference="$1" "$1.restoring" 2>/dev/null || true
  chmod --reference="$1" "$1.restoring" 2>/dev/null || true
fi
mv -f "$1.restoring" "$1"
'''
SQLITE_DISCARD = 'rm -f "$1.restoring"'


def user(job):
    return job.get("user") or "postgres"


def dump_command(job):
    """The argv that writes the job's dump to stdout."""
    engine = job["engine"]
    if engine == "command":
        return list(job["dump_command"])
    inner = {
        "postgres": lambda: ["pg_dump", f"--username={user(job)}", "--format=custom", f"--dbname={job['database']}"],
        "mysql": lambda: ["sh", "-c", MYSQL_OPTION_FILE + 'exec mysqldump --defaults-extra-file=/dev/fd/3 '
                          '--single-transaction --routines --events --databases "$1"', "sh", job["database"]],
        "redis": lambda: (["sh", "-c", 'REDISCLI_AUTH="$(cat -- "$1")" exec redis-cli --no-auth-warning --rdb -', "sh",
                           job["password_file"]] if job.get("password_file") else ["redis-cli", "--rdb", "-"]),
        "sqlite": lambda: ["sqlite3", job["path"], ".dump"],
    }[engine]()
    return ["docker", "exec", "--", job["container"], *inner]


def has_in_place_restore(job):
    return job["engine"] in ("postgres", "mysql", "sqlite") or (job["engine"] == "command" and job.get("restore_command"))


def load_command(job):
    """The argv that loads a dump from stdin into the live database (postgres, mysql, command)."""
    engine = job["engine"]
    if engine == "command":
        return list(job.get("restore_command") or [])
    inner = {
        # One transaction: a load that fails midway leaves the database as it was.
        "postgres": lambda: ["pg_restore", f"--username={user(job)}", "--clean", "--if-exists", "--no-owner",
                             "--single-transaction", f"--dbname={job['database']}"],
        "mysql": lambda: ["sh", "-c", MYSQL_OPTION_FILE + "exec mysql --defaults-extra-file=/dev/fd/3"],
    }[engine]()
    return ["docker", "exec", "-i", "--", job["container"], *inner]


def check_command(job):
    """An argv that reads the whole dump from stdin and fails unless it would load, or None."""
    if job["engine"] == "postgres":
        # Reads every table's data of the archive (a cut-off archive fails), touches no database.
        return ["docker", "exec", "-i", "--", job["container"], "pg_restore", "--file=/dev/null"]
    return None


def sqlite_command(job, script):
    return ["docker", "exec", "-i", "--", job["container"], "sh", "-c", script, "sh", job["path"]]


def dump_looks_complete(job, head, tail):
    """A cheap look at a staged dump's first and last bytes: (ok, why not)."""
    engine = job["engine"]
    if engine == "postgres" and not head.startswith(b"PGDMP"):
        return False, "not a pg_dump custom-format archive"
    if engine == "mysql" and b"-- Dump completed" not in tail:
        return False, "the dump lacks mysqldump's closing '-- Dump completed' line (cut short)"
    if engine == "sqlite" and not tail.rstrip().endswith(b"COMMIT;"):
        return False, "the dump does not end with COMMIT; (cut short)"
    if engine == "redis" and not head.startswith(b"REDIS"):
        return False, "not a Redis RDB file"
    return True, ""
