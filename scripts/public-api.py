#!/usr/bin/env python3
"""Lists a crate's public items, one path each, from rustdoc's JSON.

Usage: scripts/public-api.py CRATE_JSON > LISTING

Walks the crate from its root module through public modules and public
`use` re-exports, and prints `path kind` for every public item reached,
sorted. It fails (exit 1) when one item is reachable by two paths: each
public item must have exactly one. The CI step (scripts/public-api.sh)
diffs the listing against the committed snapshot in docs/public-api/, so
the public surface changes only on purpose.
"""
import json
import sys


def main() -> int:
    doc = json.load(open(sys.argv[1]))
    index = doc["index"]
    root = index[str(doc["root"])]
    crate = root["name"]
    seen = {}  # item id -> [paths]
    lines = set()

    def kind_of(item):
        inner = item.get("inner") or {}
        return next(iter(inner), "unknown") if isinstance(inner, dict) else str(inner)

    def public(item):
        return item.get("visibility") == "public"

    def visit(item_id, path):
        item = index.get(str(item_id))
        if item is None:
            # An item of another crate re-exported here.
            summary = doc["paths"].get(str(item_id))
            kind = summary["kind"] if summary else "external"
            lines.add(f"{'::'.join(path)} {kind} (re-export of {'::'.join(summary['path']) if summary else '?'})")
            seen.setdefault(f"ext:{item_id}", []).append("::".join(path))
            return
        kind = kind_of(item)
        if kind == "use":
            use = item["inner"]["use"]
            name = use["name"]
            target = use.get("id")
            if use.get("is_glob"):
                if target is not None and str(target) in index:
                    for child in index[str(target)]["inner"]["module"]["items"]:
                        c = index.get(str(child))
                        if c and public(c):
                            visit(child, path + [c.get("name") or "?"])
                return
            if target is None:
                lines.add(f"{'::'.join(path[:-1] + [name])} use (unresolved {use['source']})")
                return
            visit(target, path[:-1] + [name])
            return
        seen.setdefault(str(item_id), []).append("::".join(path))
        lines.add(f"{'::'.join(path)} {kind}")
        if kind == "module":
            for child in item["inner"]["module"]["items"]:
                c = index.get(str(child))
                if c is None or not public(c):
                    continue
                name = c.get("name")
                if kind_of(c) == "use":
                    visit(child, path + [c["inner"]["use"]["name"]])
                elif name is not None:
                    visit(child, path + [name])

    visit(doc["root"], [crate])
    for line in sorted(lines):
        print(line)
    twice = {k: v for k, v in seen.items() if len(v) > 1}
    if twice:
        for paths in twice.values():
            print(f"error: one item, several public paths: {', '.join(sorted(paths))}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
