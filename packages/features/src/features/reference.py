"""A Markdown reference of a TOML file, rendered from the file's JSON Schema.

One section per table (the top level, then each table it refers to, in order of first
mention), one row per key: its type, default, constraints and description.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

Schema = dict[str, Any]

_TYPES = {"object": "table"}
_CONSTRAINTS = (
    ("minimum", ">= {}"),
    ("exclusiveMinimum", "> {}"),
    ("maximum", "<= {}"),
    ("exclusiveMaximum", "< {}"),
    ("minLength", "length >= {}"),
    ("maxLength", "length <= {}"),
    ("pattern", "matches `{}`"),
    ("minItems", "items >= {}"),
    ("maxItems", "items <= {}"),
)


def markdown_reference(schema: Schema, *, title: str, command: str) -> str:
    """The reference page of the file that ``schema`` describes; ``command`` prints the schema
    (and, given ``--markdown``, this page)."""
    root = schema["title"]
    lines = [
        f"# {title}",
        "",
        f"<!-- Generated from the pydantic models by `{command} --markdown`; edit the models, "
        "not this file. -->",
        "",
        f"The file is a TOML document: its top level is [{root}](#{root.lower()}), and each "
        "section below is one table of it. A key without a default is required; *unset* means "
        "that the key is left out (TOML has no null). Unknown keys are errors. Rules that "
        "involve several keys are in the descriptions and checked when the file is loaded.",
        "",
        f"Editors complete and check the file with its JSON Schema, which `{command}` prints.",
    ]
    definitions = schema.get("$defs", {})
    for name in _sections(schema):
        lines += _section(name, schema if name == root else definitions[name])
    return "\n".join(lines) + "\n"


def _sections(schema: Schema) -> list[str]:
    """The top level's title, then every referenced definition, in order of first mention."""
    order = [schema["title"]]
    pending = [schema]
    while pending:
        for name in _refs(pending.pop(0).get("properties", {})):
            if name not in order:
                order.append(name)
                pending.append(schema["$defs"][name])
    return order


def _refs(node: Any) -> Iterator[str]:  # noqa: ANN401 - any JSON value
    if isinstance(node, dict):
        if "$ref" in node:
            yield node["$ref"].rsplit("/", 1)[-1]
        for value in node.values():
            yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


def _section(name: str, node: Schema) -> list[str]:
    lines = ["", f"## {name}", ""]
    if node.get("description"):
        lines += [node["description"], ""]
    properties: dict[str, Schema] = node.get("properties", {})
    chosen = [
        f"`{key} = {json.dumps(p['const'])}`" for key, p in properties.items() if "const" in p
    ]
    if chosen:
        lines += [f"Chosen by {', '.join(chosen)}.", ""]
    lines += ["| key | type | default | constraints | description |", "|---|---|---|---|---|"]
    required = set(node.get("required", []))
    for key, prop in properties.items():
        default = "*required*" if key in required else _default(prop)
        cells = [f"`{key}`", _type(prop), default, _constraints(prop), prop.get("description", "")]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return lines


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _options(node: Schema) -> list[Schema]:
    """A union's members, without ``null`` (an optional key is simply left out)."""
    union: list[Schema] = node.get("oneOf") or node.get("anyOf") or []
    return [option for option in union if option.get("type") != "null"]


def _type(node: Schema) -> str:
    if "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[-1]
        return f"[{name}](#{name.lower()})"
    if "const" in node:
        return f"`{json.dumps(node['const'])}`"
    if "enum" in node:
        return "one of " + ", ".join(f"`{json.dumps(value)}`" for value in node["enum"])
    if _options(node):
        return _union(node)
    return _plain(node)


def _union(node: Schema) -> str:
    names = [_type(option) for option in _options(node)]
    text = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"
    by = node.get("discriminator", {}).get("propertyName")
    return f"{text}, by `{by}`" if by else text


def _plain(node: Schema) -> str:
    kind = node.get("type")
    if kind == "array":
        items = node.get("prefixItems")
        return f"[{', '.join(map(_type, items))}]" if items else f"list of {_type(node['items'])}"
    return "path" if node.get("format") == "path" else _TYPES.get(str(kind), str(kind))


def _default(node: Schema) -> str:
    if "default" not in node:
        return ""
    if node["default"] is None:
        return "*unset*"
    return f"`{_toml(node['default'])}`"


def _toml(value: Any) -> str:  # noqa: ANN401 - any JSON value
    """A TOML literal for a default (a table's unset keys left out)."""
    if isinstance(value, dict):
        pairs = [f"{key} = {_toml(item)}" for key, item in value.items() if item is not None]
        return "{" + ", ".join(pairs) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_toml(item) for item in value) + "]"
    return json.dumps(value)


def _constraints(node: Schema) -> str:
    parts = []
    for part in [node, *_options(node)]:
        for key, template in _CONSTRAINTS:
            if key not in part or ("prefixItems" in part and key in {"minItems", "maxItems"}):
                continue
            value = part[key]
            parts.append(template.format(f"{value:g}" if isinstance(value, float) else value))
    return ", ".join(parts)
