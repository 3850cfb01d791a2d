"""What the document keeps of its operations: those the app's URL rules serve, and the
components they use.

Parts turned off by configuration (the operator endpoints, /metrics) are never registered,
so the URL map says what is served under this configuration, and at which paths (the tus
prefix): the modules describe those parts whatever the switches say, and this leaves out what
the app does not route. Switches that keep their routes (downloads, the upload page) are
read by their modules.
"""
import re

from werkzeug.routing import Map

METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
_PLACEHOLDER = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")


def template(rule: str) -> str:
    """A URL rule as an OpenAPI path: <converter:name> becomes {name}."""
    return _PLACEHOLDER.sub(r"{\1}", rule)


def routed(url_map: Map) -> dict[str, set[str]]:
    """Each path the URL map serves, and its methods (lower case, as OpenAPI writes them)."""
    found: dict[str, set[str]] = {}
    for rule in url_map.iter_rules():
        found.setdefault(template(rule.rule), set()).update(m.lower() for m in rule.methods)
    return found


def keep_routed(document: dict, url_map: Map) -> None:
    """Leave out of document every operation that no URL rule serves."""
    served = routed(url_map)
    paths = document["paths"]
    for path, item in list(paths.items()):
        methods = served.get(path, set())
        kept = {key: value for key, value in item.items() if key not in METHODS or key in methods}
        if METHODS & set(kept):
            paths[path] = kept
        else:
            del paths[path]


def drop_unused(document: dict) -> None:
    """Leave out the schemas and shared answers that no kept operation refers to."""
    components = document["components"]
    used: set[str] = set()
    pending: list = [document["paths"]]
    while pending:
        node = pending.pop()
        if isinstance(node, list):
            pending.extend(node)
        elif isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/components/") and ref not in used:
                used.add(ref)
                kind, name = ref.split("/")[2:4]
                pending.append(components[kind][name])
            pending.extend(node.values())
    for kind in ("schemas", "responses"):
        named = components.get(kind, {})
        for name in list(named):
            if f"#/components/{kind}/{name}" not in used:
                del named[name]
