# Copyright: (c) 2026, armstack.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A stand-in for the docker CLI in the runner's unit tests.

State in $STUB_DOCKER_STATE (JSON): {"containers": {NAME: {"running": bool}},
"volumes": {NAME: mountpoint}, "users": {VOLUME: [container...]}}.
`docker exec [-i] [--] CONTAINER CMD...` runs CMD here, with $STUB_EXEC_PATH
first on PATH (the tests' fake database tools). STUB_DOCKER_FAIL_START=NAME
makes `docker start NAME` fail. Every run is logged to $STUB_LOG.
"""

import json
import os
import sys


def main():
    argv = sys.argv[1:]
    with open(os.environ.get("STUB_LOG", os.devnull), "a", encoding="utf-8") as log:
        log.write(json.dumps({"docker": argv}) + "\n")
    path = os.environ["STUB_DOCKER_STATE"]
    with open(path, encoding="utf-8") as handle:
        state = json.load(handle)

    def save():
        with open(path, "w", encoding="utf-8") as handle:
            json.dump(state, handle)

    args = [a for a in argv if a != "--"]
    if args[:1] == ["exec"]:
        rest = argv[1:]
        while rest and rest[0].startswith("-"):
            if rest[0] == "--":
                rest = rest[1:]
                break
            rest = rest[1:]
        container, command = rest[0], rest[1:]
        if not state["containers"].get(container, {}).get("running"):
            print(f"Error response from daemon: container {container} is not running", file=sys.stderr)
            return 1
        env = dict(os.environ, PATH=os.environ.get("STUB_EXEC_PATH", "") + os.pathsep + os.environ["PATH"],
                   STUB_CONTAINER=container)
        os.execvpe(command[0], command, env)
    if args[:2] == ["volume", "inspect"]:
        name = args[-1]
        if name not in state.get("volumes", {}):
            print(f"Error: No such volume: {name}", file=sys.stderr)
            return 1
        print(state["volumes"][name])
        return 0
    if args[:1] == ["inspect"]:
        name = args[-1]
        if name not in state["containers"]:
            print(f"Error: No such object: {name}", file=sys.stderr)
            return 1
        print("true" if state["containers"][name]["running"] else "false")
        return 0
    if args[:1] in (["stop"], ["start"]):
        name = args[-1]
        if args[0] == "start" and os.environ.get("STUB_DOCKER_FAIL_START") == name:
            return 1
        state["containers"].setdefault(name, {})["running"] = args[0] == "start"
        save()
        print(name)
        return 0
    if args[:1] == ["ps"]:
        volume = next(a.split("=", 1)[1] for a in args if a.startswith("volume="))
        print("\n".join(c for c in state.get("users", {}).get(volume, []) if state["containers"][c]["running"]))
        return 0
    print(f"stub docker: unknown command {argv}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
