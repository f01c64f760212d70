"""landfall's structural rules for deploy/Dockerfile and .dockerignore (run by
scripts/validate-deploy beside hadolint; no Docker engine is needed, and none builds the image
here).

  - multi-stage: a rust:1.95-bookworm builder, a small runtime base (debian:bookworm-slim or
    distroless cc);
  - dependencies are compiled in their own layer (`cargo chef cook`) before the sources are
    copied, with the same package list as the final `cargo build`;
  - that package list is exactly the workspace's binary packages, and every binary is copied
    into the runtime stage;
  - the runtime stage copies datasets/ where LANDFALL_DATASETS_DIR points, and runs as a
    numeric non-root USER;
  - .dockerignore keeps target/ and .git/ out of the context but lets in every workspace member,
    sql/migrations (embedded by the runtime crate's build.rs) and datasets/.

Usage: python dockerfile_check.py REPO_ROOT [DOCKERFILE]   (prints each problem; exit 1 if any)
"""

import os
import re
import shlex
import sys
import tomllib

BUILDER_IMAGES = ("rust:1.95-bookworm",)
RUNTIME_IMAGES = ("debian:bookworm-slim", "gcr.io/distroless/cc-debian12")


def instructions(text):
    """(keyword, arguments) per instruction, with continuation lines joined and comments dropped."""
    result, current = [], ""
    for line in text.splitlines():
        stripped = line.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if current and stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        current += stripped
        keyword, _, arguments = current.partition(" ")
        result.append((keyword.upper(), arguments.strip()))
        current = ""
    return result


def resolve(value, args):
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: args.get(m.group(1) or m.group(2), m.group(0)), value)


def packages_of(command):
    """The `-p` packages of the cargo invocation in a RUN line (other commands may follow)."""
    cargo = next((part for part in re.split(r"&&|;", command) if "cargo " in part), "")
    words = shlex.split(cargo)
    return sorted(words[i + 1] for i, word in enumerate(words) if word in ("-p", "--package") and i + 1 < len(words))


def workspace_binaries(root):
    """Package name -> path, for every workspace member with a binary (src/main.rs or [[bin]])."""
    with open(os.path.join(root, "Cargo.toml"), "rb") as handle:
        members = tomllib.load(handle)["workspace"]["members"]
    binaries = {}
    for member in members:
        with open(os.path.join(root, member, "Cargo.toml"), "rb") as handle:
            manifest = tomllib.load(handle)
        has_main = os.path.isfile(os.path.join(root, member, "src", "main.rs"))
        bins = [b.get("name", manifest["package"]["name"]) for b in manifest.get("bin", [])]
        if has_main or bins:
            for name in bins or [manifest["package"]["name"]]:
                binaries[name] = member
    return members, binaries


def pattern_regex(pattern):
    """A .dockerignore pattern as a regex: `**` spans folders, `*` and `?` stay within one."""
    regex, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            regex, i = regex + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            regex, i = regex + ".*", i + 2
        else:
            char = pattern[i]
            regex += "[^/]*" if char == "*" else "[^/]" if char == "?" else re.escape(char)
            i += 1
    return re.compile(regex + "$")


def ignored(path, patterns):
    """Docker's rule: the last pattern that matches the path or one of its parents decides."""
    parts = path.split("/")
    prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    excluded = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        regex = pattern_regex(os.path.normpath(pattern.lstrip("!")).strip("/"))
        if any(regex.match(prefix) for prefix in prefixes):
            excluded = not negate
    return excluded


def check(root, dockerfile):
    problems = []
    with open(dockerfile, encoding="utf-8") as handle:
        steps = instructions(handle.read())
    args, stages = {}, []
    for keyword, arguments in steps:
        if keyword == "ARG" and not stages:
            name, _, default = arguments.partition("=")
            args[name] = default.strip('"')
        elif keyword == "FROM":
            words = arguments.split()
            image = resolve(words[0], args)
            alias = words[2] if len(words) > 2 and words[1].upper() == "AS" else None
            stages.append({"image": image, "alias": alias, "steps": [], "args": dict(args)})
        elif stages:
            stages[-1]["steps"].append((keyword, arguments))
            if keyword == "ARG":
                name, _, default = arguments.partition("=")
                stages[-1]["args"][name] = default.strip('"')
    if len(stages) < 2:
        return [f"deploy/Dockerfile: {len(stages)} stage(s); expected a multi-stage build"]
    if not any(s["image"] in BUILDER_IMAGES for s in stages[:-1]):
        problems.append(f"deploy/Dockerfile: no build stage FROM {' or '.join(BUILDER_IMAGES)}")
    runtime = stages[-1]
    if not runtime["image"].startswith(RUNTIME_IMAGES):
        problems.append(f"deploy/Dockerfile: the final stage is FROM {runtime['image']}, expected one of {RUNTIME_IMAGES}")

    members, binaries = workspace_binaries(root)
    runs = [(i, s, a) for i, stage in enumerate(stages) for s, (k, a) in enumerate(stage["steps"]) if k == "RUN"]
    cooks = [(i, s, a) for i, s, a in runs if "cargo chef cook" in a]
    builds = [(i, s, a) for i, s, a in runs if re.search(r"cargo build\b", a)]
    if not cooks or not builds:
        problems.append("deploy/Dockerfile: expected a `cargo chef cook` dependency layer and a `cargo build`")
    else:
        cook, build = cooks[-1], builds[-1]
        stage_steps = stages[build[0]]["steps"]
        source_copies = [s for s, (k, a) in enumerate(stage_steps) if k == "COPY" and a.split()[0] == "."]
        if cook[0] != build[0] or not source_copies or not (cook[1] < source_copies[0] < build[1]):
            problems.append("deploy/Dockerfile: the dependency layer (cargo chef cook) must come before `COPY . .` "
                            "and the final cargo build, in the same stage")
        if packages_of(cook[2]) != packages_of(build[2]):
            problems.append(f"deploy/Dockerfile: cook builds {packages_of(cook[2])} but the build {packages_of(build[2])}; "
                            "different package sets recompile the dependencies")
        if set(packages_of(build[2])) != set(binaries):
            problems.append(f"deploy/Dockerfile: builds {packages_of(build[2])}, the workspace's binaries are {sorted(binaries)}")
        for name in binaries:
            if f"target/release/{name}" not in build[2]:
                problems.append(f"deploy/Dockerfile: binary {name} is built but not copied out of target/release")

    runtime_copies = [a for k, a in runtime["steps"] if k == "COPY"]
    env = {}
    for keyword, arguments in runtime["steps"]:
        if keyword == "ENV":
            for match in re.finditer(r"(\w+)=(\S+)", arguments):
                env[match.group(1)] = match.group(2)
    copies = [a.split() for a in runtime_copies if a.split()[0].rstrip("/") == "datasets"]
    if not copies:
        problems.append("deploy/Dockerfile: the runtime stage does not copy datasets/")
    elif env.get("LANDFALL_DATASETS_DIR", "").rstrip("/") != copies[0][-1].rstrip("/"):
        problems.append(f"deploy/Dockerfile: LANDFALL_DATASETS_DIR={env.get('LANDFALL_DATASETS_DIR')!r} "
                        f"but datasets/ is copied to {copies[0][-1]}")
    users = [resolve(a, runtime["args"]) for k, a in runtime["steps"] if k == "USER"]
    if not users:
        problems.append("deploy/Dockerfile: the runtime stage has no USER (it would run as root)")
    else:
        uid = users[-1].split(":")[0]
        if not uid.isdigit() or uid == "0":
            problems.append(f"deploy/Dockerfile: USER {users[-1]}: use a numeric non-root uid (runAsNonRoot checks it)")

    with open(os.path.join(root, ".dockerignore"), encoding="utf-8") as handle:
        patterns = [line.strip() for line in handle if line.strip() and not line.startswith("#")]
    needed = ["Cargo.toml", "Cargo.lock", "sql/migrations", "datasets"]
    needed += [f"{m}/Cargo.toml" for m in members] + [f"{m}/src" for m in members]
    for path in needed:
        if ignored(path, patterns):
            problems.append(f".dockerignore: excludes {path}, which the image build needs")
    for path in ("target", ".git"):
        if not ignored(path, patterns):
            problems.append(f".dockerignore: does not exclude {path}/")
    return problems


def main():
    root = sys.argv[1]
    dockerfile = sys.argv[2] if len(sys.argv) > 2 else os.path.join(root, "deploy", "Dockerfile")
    problems = check(root, dockerfile)
    for problem in problems:
        print(problem)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
