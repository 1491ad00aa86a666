#!/usr/bin/env python3
"""Generate the ODS (TableGen) definitions of the `onnx` dialect's ops.

The source of truth is onnx's own operator registry: every op of the default
domain, at the newest version not above ``--opset``, becomes one ODS record.
The generator first builds a small structured model of each op (operands,
results, attributes, regions) and then renders it through string templates,
so the mapping rules below are the only place that knows about ODS syntax.

Mapping rules:
  * an ONNX type constraint becomes ``AnyTypeOf<[...]>`` over tensor element
    types and the dialect's own seq/optional/map types;
  * an optional input or output also accepts ``none`` (absent value);
  * a variadic input or output becomes ``Variadic<...>`` (ONNX only allows the
    last formal parameter to be variadic, so no segment sizes are needed);
  * attributes with a schema default are ``DefaultValuedAttr`` (floats are
    written with full float32 precision), others ``OptionalAttr`` unless
    required; list attributes are optional and keep the default in the docs;
  * graph attributes (If, Loop, Scan) become single-block regions.
"""

from __future__ import annotations

import argparse
import dataclasses
import struct
import sys

import onnx
from onnx import defs

# onnx attribute type -> ODS attribute constraint
ATTR_TYPES = {
    defs.OpSchema.AttrType.INT: "I64Attr",
    defs.OpSchema.AttrType.FLOAT: "F32Attr",
    defs.OpSchema.AttrType.STRING: "StrAttr",
    defs.OpSchema.AttrType.INTS: "I64ArrayAttr",
    defs.OpSchema.AttrType.FLOATS: "F32ArrayAttr",
    defs.OpSchema.AttrType.STRINGS: "StrArrayAttr",
    defs.OpSchema.AttrType.TENSOR: "ElementsAttr",
    defs.OpSchema.AttrType.SPARSE_TENSOR: "ElementsAttr",
    defs.OpSchema.AttrType.TYPE_PROTO: "TypeAttr",
}

# onnx tensor element type name -> ODS type constraint
ELEMENT_TYPES = {
    "float": "F32", "double": "F64", "float16": "F16", "bfloat16": "BF16",
    "float8e4m3fn": "F8E4M3FN", "float8e4m3fnuz": "F8E4M3FNUZ",
    "float8e5m2": "F8E5M2", "float8e5m2fnuz": "F8E5M2FNUZ",
    "float8e8m0": "F8E8M0FNU", "float4e2m1": "F4E2M1FN",
    "int2": "I<2>", "int4": "I<4>", "int8": "I8", "int16": "I16", "int32": "I32", "int64": "I64",
    "uint2": "UI<2>", "uint4": "UI<4>", "uint8": "UI8", "uint16": "UI16", "uint32": "UI32", "uint64": "UI64",
    "bool": "I1", "string": "ONNX_StringType",
    "complex64": "Complex<F32>", "complex128": "Complex<F64>",
}

# Names ODS or the generated C++ reserve; an ONNX name equal to one gets a suffix.
RESERVED_NAMES = {"operands", "results", "attributes", "properties", "context", "location",
                  "regions", "default", "operator", "template", "register", "union", "new"}


@dataclasses.dataclass(frozen=True)
class Value:
    name: str
    constraint: str


@dataclasses.dataclass(frozen=True)
class Attribute:
    name: str
    constraint: str


@dataclasses.dataclass(frozen=True)
class OpModel:
    name: str
    version: int
    summary: str
    operands: list[Value]
    results: list[Value]
    attributes: list[Attribute]
    regions: list[str]


def newest_schemas(max_opset: int) -> list[defs.OpSchema]:
    """Return the newest default-domain schema of every op, not newer than max_opset."""
    newest: dict[str, defs.OpSchema] = {}
    for schema in defs.get_all_schemas_with_history():
        if schema.domain != "" or schema.since_version > max_opset:
            continue
        known = newest.get(schema.name)
        if known is None or schema.since_version > known.since_version:
            newest[schema.name] = schema
    return [newest[name] for name in sorted(newest)]


def kind_constraints(type_strs: list[str]) -> list[str]:
    """ODS constraints accepting the given onnx type strings ('tensor(float)', 'seq(...)', ...)."""
    elements, others = [], set()
    for type_str in type_strs:
        if type_str.startswith("tensor("):
            elements.append(ELEMENT_TYPES[type_str[7:-1]])
        elif type_str.startswith("seq("):
            others.add("ONNX_SeqType")
        elif type_str.startswith("optional("):
            others.add("ONNX_OptType")
        elif type_str.startswith("map("):
            others.add("ONNX_MapType")
        elif type_str.startswith("sparse_tensor("):
            others.add("AnyTensor")
        else:
            raise ValueError(f"unknown onnx type string {type_str!r}")
    kinds = [f"TensorOf<[{', '.join(sorted(set(elements)))}]>"] if elements else []
    return kinds + sorted(others)


def value_constraint(schema: defs.OpSchema, param: defs.OpSchema.FormalParameter) -> str:
    allowed = param.types
    for constraint in schema.type_constraints:
        if constraint.type_param_str == param.type_str:
            allowed = constraint.allowed_type_strs
    kinds = kind_constraints(list(allowed))
    option = param.option
    if option == defs.OpSchema.FormalParameterOption.Optional:
        kinds.append("NoneType")
    base = kinds[0] if len(kinds) == 1 else f"AnyTypeOf<[{', '.join(kinds)}]>"
    if option == defs.OpSchema.FormalParameterOption.Variadic:
        return f"Variadic<{base}>"
    return base


def float32_literal(value: float) -> str:
    """A decimal literal that parses back to exactly the same float32."""
    exact = struct.unpack("f", struct.pack("f", value))[0]
    return repr(exact)


def attribute_default(attr: defs.OpSchema.Attribute) -> str | None:
    proto = attr.default_value
    if not proto.name:
        return None
    kind = attr.type
    if kind == defs.OpSchema.AttrType.INT:
        return str(proto.i)
    if kind == defs.OpSchema.AttrType.FLOAT:
        return float32_literal(proto.f)
    if kind == defs.OpSchema.AttrType.STRING:
        return proto.s.decode()
    return None  # list, tensor and type defaults stay documented, not encoded


def attribute_constraint(attr: defs.OpSchema.Attribute) -> str:
    base = ATTR_TYPES[attr.type]
    default = attribute_default(attr)
    if attr.type == defs.OpSchema.AttrType.STRING and default is not None:
        return f'DefaultValuedStrAttr<{base}, "{default}">'
    if default is not None:
        return f'DefaultValuedAttr<{base}, "{default}">'
    if attr.required:
        return base
    return f"OptionalAttr<{base}>"


def safe_name(name: str, taken: set[str]) -> str:
    candidate = name if name not in RESERVED_NAMES else f"{name}_"
    while candidate in taken:
        candidate += "_"
    taken.add(candidate)
    return candidate


def op_model(schema: defs.OpSchema) -> OpModel:
    taken: set[str] = set()
    operands = [Value(safe_name(p.name, taken), value_constraint(schema, p)) for p in schema.inputs]
    results = [Value(safe_name(p.name, taken), value_constraint(schema, p)) for p in schema.outputs]
    attributes, regions = [], []
    for name in sorted(schema.attributes):
        attr = schema.attributes[name]
        if attr.type == defs.OpSchema.AttrType.GRAPH:
            regions.append(safe_name(name, taken))
        elif attr.type in ATTR_TYPES:
            attributes.append(Attribute(safe_name(name, taken), attribute_constraint(attr)))
        else:
            raise ValueError(f"{schema.name}: attribute {name} has unsupported type {attr.type}")
    summary = f"ONNX {schema.name} (opset {schema.since_version})"
    return OpModel(schema.name, schema.since_version, summary, operands, results, attributes, regions)


OP_TEMPLATE = """\
def ONNX_{name}Op : ONNX_Op<"{name}"{traits}> {{
  let summary = "{summary}";
  let arguments = (ins{arguments});
  let results = (outs{results});{regions}
}}
"""


def render_list(items: list[str]) -> str:
    if not items:
        return ""
    return "\n    " + ",\n    ".join(items)


def render_op(op: OpModel) -> str:
    arguments = [f"{v.constraint}:${v.name}" for v in op.operands]
    arguments += [f"{a.constraint}:${a.name}" for a in op.attributes]
    results = [f"{v.constraint}:${v.name}" for v in op.results]
    regions = ""
    traits = ""
    if op.regions:
        names = ", ".join(f"SizedRegion<1>:${r}" for r in op.regions)
        regions = f"\n  let regions = (region {names});"
        traits = ", [RecursiveMemoryEffects]"
    return OP_TEMPLATE.format(name=op.name, traits=traits, summary=op.summary,
                              arguments=render_list(arguments), results=render_list(results),
                              regions=regions)


HEADER = """\
// Generated by tools/gen-onnx-dialect/gen_onnx_ods.py from onnx {onnx_version}
// operator schemas (default domain, newest version <= opset {opset}). Do not edit.

#ifndef SPA_DIALECT_ONNX_ONNXOPS_GEN_TD
#define SPA_DIALECT_ONNX_ONNXOPS_GEN_TD

include "spa/Dialect/ONNX/ONNXBase.td"

"""


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--opset", type=int, required=True, help="newest opset version to generate")
    parser.add_argument("--onnx-version", required=True, help="the onnx version this build is pinned to")
    parser.add_argument("-o", "--output", required=True)
    args = parser.parse_args(argv)
    if onnx.__version__ != args.onnx_version:
        print(f"error: the build is pinned to onnx {args.onnx_version}, but onnx {onnx.__version__} "
              "is installed; install the pinned version", file=sys.stderr)
        return 1
    ops = [op_model(s) for s in newest_schemas(args.opset)]
    text = HEADER.format(onnx_version=onnx.__version__, opset=args.opset)
    text += "\n".join(render_op(op) for op in ops)
    text += "\n#endif // SPA_DIALECT_ONNX_ONNXOPS_GEN_TD\n"
    with open(args.output, "w", encoding="utf-8") as out:
        out.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
