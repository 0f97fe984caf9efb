"""Arrays of more than one dimension (PostgreSQL's), read as the list of their elements in order and
their shape: `with_shapes`, an Arrow extension type (storage: a struct of `value`, the list, and
`dims`, the length of each dimension of an array of more than one, else NULL), which the mapping
sends as nested lists (`frame_from_arrow`, `map_batch`): `{{1,2},{3,4}}` as [[1,2],[3,4]].

A PostgreSQL column of type `int[]` holds arrays of any number of dimensions, row by row, where an
Arrow list type has one depth for the whole column: ADBC read `{{1,2},{3,4}}` as [1,2,3,4] (sent so,
the platform got another value), and the cursor path failed the whole run on a column mixing 1-D and
2-D arrays (ArrowInvalid: cannot mix list and non-list). The elements stay in the list, read by the
driver as those of any array of the column (numerics as their digits, dates, timestamps), so that
each row's value is encoded as a one-dimensional one is, then nested.
"""
from __future__ import annotations

import pyarrow as pa

NAME = "dinsync.with_shapes"


class WithShapesScalar(pa.ExtensionScalar):
    def as_py(self, **kwargs):
        """The array as Python lists, nested by its dimensions (what `to_pylist` gives)."""
        storage = self.value
        if storage is None:
            return None
        values, dims = storage["value"].as_py(**kwargs), storage["dims"].as_py()
        return _nest(values, dims) if dims and values is not None else values


class WithShapesType(pa.ExtensionType):
    def __arrow_ext_scalar_class__(self):
        return WithShapesScalar

    def __init__(self, value_type: pa.DataType) -> None:
        super().__init__(pa.struct([pa.field("value", value_type), pa.field("dims", pa.list_(pa.int32()))]), NAME)

    def __arrow_ext_serialize__(self) -> bytes:
        return b""

    @classmethod
    def __arrow_ext_deserialize__(cls, storage_type, serialized) -> "WithShapesType":
        return cls(storage_type.field("value").type)


try:
    pa.register_extension_type(WithShapesType(pa.list_(pa.null())))
except pa.ArrowKeyError:  # already registered (module reloaded)
    pass


def is_with_shapes(t: pa.DataType) -> bool:
    return isinstance(t, pa.BaseExtensionType) and t.extension_name == NAME


def with_shapes(values: pa.Array, dims: pa.Array) -> pa.Array:
    """Lists of elements `values`, each with its dimensions (a list of lengths; NULL: one dimension)."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if isinstance(dims, pa.ChunkedArray):
        dims = dims.combine_chunks()
    if dims.type != pa.list_(pa.int32()):
        dims = dims.cast(pa.list_(pa.int32()))
    storage = pa.StructArray.from_arrays([values, dims], names=["value", "dims"])
    return pa.ExtensionArray.from_storage(WithShapesType(values.type), storage)


def split(array: pa.Array | pa.ChunkedArray) -> tuple[pa.Array, pa.Array]:
    """(values, dims) of a `with_shapes` array."""
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    storage = array.storage
    return storage.field("value"), storage.field("dims")


def nested_json(elements: list[str], dims: list[int]) -> str:
    """The JSON text of the elements (each already JSON) nested as `dims` says, row-major."""
    if len(dims) == 1:
        return "[" + ",".join(elements) + "]"
    step = len(elements) // dims[0] if dims[0] else 0
    return "[" + ",".join(nested_json(elements[k * step:(k + 1) * step], dims[1:]) for k in range(dims[0])) + "]"


def json_elements(text: str) -> list[str]:
    """The top-level elements of a JSON array's text, each as its JSON text."""
    out, depth, start, quoted, escaped = [], 0, 1, False, False
    for i, ch in enumerate(text):
        if quoted:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                quoted = False
        elif ch == '"':
            quoted = True
        elif ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
            if depth == 0:
                if text[start:i].strip():
                    out.append(text[start:i])
        elif ch == "," and depth == 1:
            out.append(text[start:i])
            start = i + 1
    return out


def _nest(elements: list, dims: list[int]) -> list:
    if len(dims) == 1:
        return elements
    step = len(elements) // dims[0] if dims[0] else 0
    return [_nest(elements[k * step:(k + 1) * step], dims[1:]) for k in range(dims[0])]
