"""Reading callgrind's dumps: instructions per call, and where they go.

Used by `bench/run --callgrind N`, which runs each server under
`valgrind --tool=callgrind`, zeroes its counters, makes N calls of one RPC
and dumps them. Instruction counts (valgrind's Ir) do not depend on how busy
the machine is, so they compare servers where timings on a noisy 2-core
machine cannot. Standard library only.
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

# The first crate a (demangled) Rust symbol names: `h2` in
# `<h2::proto::streams::Streams<B,P> as core::clone::Clone>::clone`.
CRATE = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)::")
# Symbols of C code, grouped by the library they come from.
C_GROUPS = (
    ("mi_", "mimalloc"), ("_mi_", "mimalloc"), ("sqlite3", "sqlite (C)"),
    ("__memcpy", "libc"), ("__memmove", "libc"), ("__memset", "libc"), ("mem", "libc"),
    ("malloc", "libc malloc"), ("_int_", "libc malloc"), ("free", "libc malloc"),
    ("cfree", "libc malloc"), ("realloc", "libc malloc"), ("syscall", "libc"),
    ("epoll", "libc"), ("__libc", "libc"), ("pthread", "libc"), ("__lll", "libc"),
    ("str", "libc"), ("__GI_", "libc"), ("__strlen", "libc"),
)


def totals(dump: Path) -> int:
    """The dump's total instruction count (its `totals:` or `summary:` line)."""
    for line in dump.read_text(errors="replace").splitlines():
        if line.startswith(("totals:", "summary:")):
            return int(line.split()[1])
    raise ValueError(f"{dump}: no totals line")


def exclusive_by_function(dump: Path) -> dict[str, int]:
    """Instructions spent in each function itself (callees excluded)."""
    names: dict[str, str] = {}
    costs: dict[str, int] = defaultdict(int)
    current = ""
    skip_next = False

    def name_of(spec: str) -> str:
        # `(12) name` defines id 12; `(12)` refers to it.
        match = re.match(r"\((\d+)\)(?: (.*))?", spec)
        if not match:
            return spec
        if match.group(2) is not None:
            names[match.group(1)] = match.group(2)
        return names.get(match.group(1), spec)

    for line in dump.read_text(errors="replace").splitlines():
        if line.startswith("fn="):
            current = name_of(line[3:])
        elif line.startswith("cfn="):
            name_of(line[4:])
        elif line.startswith("calls="):
            # The next cost line is the call's inclusive cost: the callee's.
            skip_next = True
        elif line and (line[0].isdigit() or line[0] in "+-*"):
            if skip_next:
                skip_next = False
                continue
            fields = line.split()
            if len(fields) >= 2:
                costs[current] += int(fields[1])
    return dict(costs)


def group_of(function: str) -> str:
    """Which crate (or C library) a function belongs to."""
    match = CRATE.search(function)
    if match:
        return match.group(1)
    for prefix, group in C_GROUPS:
        if function.startswith(prefix):
            return group
    return "other"


def by_group(dump: Path) -> dict[str, int]:
    groups: dict[str, int] = defaultdict(int)
    for function, cost in exclusive_by_function(dump).items():
        groups[group_of(function)] += cost
    return dict(groups)
