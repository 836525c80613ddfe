"""Reading specs: JSON and jsonnet files and text, variables, the import sandbox and error places."""

import contextlib
import os
import pickle
import tempfile
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fluxion import FluxionError
from fluxion.errors import SpecError
from fluxion.spec.source import TEXT_NAME, Document, read, resolve


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A secret file next to (not inside) the spec folder ``tmp_path / "specs"``."""
    return write(tmp_path / "secret.libsonnet", '{secret: "leaked"}')


@pytest.fixture
def specs(tmp_path: Path) -> Path:
    return tmp_path / "specs"


# --- errors


def test_spec_error_reads_file_line_column_path_reason() -> None:
    error = SpecError('expected an int, got "3"', file="model.jsonnet", line=12, column=5, path="blocks[3].kernel_size")
    assert str(error) == 'model.jsonnet:12:5: blocks[3].kernel_size: expected an int, got "3"'
    assert (error.file, error.line, error.column, error.path) == ("model.jsonnet", 12, 5, "blocks[3].kernel_size")
    assert error.reason == 'expected an int, got "3"'
    assert isinstance(error, FluxionError)
    assert isinstance(error, ValueError)


def test_spec_error_leaves_out_what_is_unknown() -> None:
    assert str(SpecError("bad")) == "bad"
    assert str(SpecError("bad", path="")) == "bad"
    assert str(SpecError("bad", file=Path("a/m.json"))) == "a/m.json: bad"
    assert str(SpecError("bad", file="m.json", line=3)) == "m.json:3: bad"
    assert str(SpecError("bad", line=3, column=7)) == "line 3, column 7: bad"


def test_spec_error_survives_pickling() -> None:
    error = pickle.loads(pickle.dumps(SpecError("bad", file="m.json", line=2, column=4, path="a[0]")))
    assert str(error) == "m.json:2:4: a[0]: bad"


# --- JSON


def test_json_file(tmp_path: Path) -> None:
    file = write(tmp_path / "model.json", '{"type": "Linear", "args": [4, 8]}')
    document = read(file)
    assert document == Document({"type": "Linear", "args": [4, 8]}, file=file, root=file.parent.resolve())
    assert read(str(file)).data == document.data


def test_json_text() -> None:
    assert read('  [1, {"a": null}]').data == [1, {"a": None}]
    assert read('\n"just a string"\n').data == "just a string"


def test_mapping_is_kept_as_is() -> None:
    spec = {"type": "Linear"}
    assert read(spec).data is spec
    with pytest.raises(SpecError, match="need a jsonnet spec"):
        read(spec, tla={"x": 1})


def test_invalid_json_file_says_line_and_column(tmp_path: Path) -> None:
    file = write(tmp_path / "model.json", '{\n  "a": 1,\n  "b" 2\n}')
    with pytest.raises(SpecError) as caught:
        read(file)
    assert (caught.value.file, caught.value.line, caught.value.column) == (file, 3, 7)
    assert str(caught.value) == f"{file}:3:7: Expecting ':' delimiter"


def test_json_refuses_nan(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="NaN is not a JSON number"):
        read(write(tmp_path / "model.json", '{"eps": NaN}'))


def test_json_file_refuses_variables(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="need a jsonnet file"):
        read(write(tmp_path / "model.json", "{}"), ext_vars={"a": "b"})


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="no such spec file") as caught:
        read(tmp_path / "missing.jsonnet")
    assert caught.value.file == tmp_path / "missing.jsonnet"
    with pytest.raises(SpecError, match="no such spec file"):
        read("missing/model.json")


def test_folder_is_not_a_spec(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="is a folder"):
        read(tmp_path)
    with pytest.raises(SpecError, match="is a folder"):
        read(str(tmp_path))


def test_not_utf8(tmp_path: Path) -> None:
    file = tmp_path / "model.jsonnet"
    file.write_bytes(b'{a: "\xff"}')
    with pytest.raises(SpecError, match="not UTF-8"):
        read(file)


def test_search_path_must_be_a_folder(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="is not a folder"):
        read("{}", search_paths=[tmp_path / "nowhere"])


def test_unsupported_source_type() -> None:
    with pytest.raises(SpecError, match="not int"):
        read(3)  # pyright: ignore[reportArgumentType]


# --- jsonnet and its variables


def test_jsonnet_file(specs: Path) -> None:
    file = write(specs / "model.jsonnet", "local width = 8;\n{widths: [width, width * 2], ratio: 0.5}")
    assert read(file).data == {"widths": [8, 16], "ratio": 0.5}


def test_jsonnet_text() -> None:
    assert read("local n = 3; {blocks: std.range(1, n)}").data == {"blocks": [1, 2, 3]}
    assert read("local n = 1; " * 30 + "n").data == 1  # longer than any file name may be


def test_ext_vars_strings_and_json_values(specs: Path) -> None:
    file = write(specs / "model.jsonnet", "{name: std.extVar('name'), depths: std.extVar('depths')}")
    data = read(file, ext_vars={"name": "resnet", "depths": [2, 2, 2, 2]}).data
    assert data == {"name": "resnet", "depths": [2, 2, 2, 2]}
    assert read(file, ext_vars={"name": "3", "depths": {"a": True, "b": None}}).data == {
        "name": "3",
        "depths": {"a": True, "b": None},
    }


def test_ext_code(specs: Path) -> None:
    file = write(specs / "model.jsonnet", "{widths: std.extVar('widths')}")
    assert read(file, ext_code={"widths": "[8 * i for i in std.range(1, 3)]"}).data == {"widths": [8, 16, 24]}


def test_tla_strings_and_json_values(specs: Path) -> None:
    file = write(specs / "model.jsonnet", "function(name, depths, width=4) {name: name, depths: depths, width: width}")
    data = read(file, tla={"name": "net", "depths": [1, 2]}).data
    assert data == {"name": "net", "depths": [1, 2], "width": 4}
    assert read(file, tla={"name": "net", "depths": 3, "width": 16.5}).data["width"] == 16.5


def test_top_level_function_without_arguments_says_so(specs: Path) -> None:
    file = write(specs / "model.jsonnet", "function(depth) {depth: depth}")
    with pytest.raises(SpecError, match=r"parameter depth not bound.*tla=") as caught:
        read(file)
    assert caught.value.file == os.fspath(file)


def test_variables_are_checked() -> None:
    with pytest.raises(SpecError, match="names must be strings"):
        read("{}", ext_vars={1: "a"})  # pyright: ignore[reportArgumentType]
    with pytest.raises(SpecError, match="not a JSON value"):
        read("{}", tla={"x": object()})
    with pytest.raises(SpecError, match="not a JSON value"):
        read("{}", ext_vars={"x": float("nan")})
    with pytest.raises(SpecError, match="jsonnet code in a string"):
        read("{}", ext_code={"x": 3})  # pyright: ignore[reportArgumentType]
    with pytest.raises(SpecError, match="both in ext_vars and in ext_code"):
        read("{}", ext_vars={"x": 1}, ext_code={"x": "2"})
    # the bindings would cut these strings at the NUL without a word
    with pytest.raises(SpecError, match="NUL"):
        read("std.extVar('x')", ext_vars={"x": "a\0b"})
    with pytest.raises(SpecError, match="NUL"):
        read("std.extVar('x')", ext_code={"x\0y": "1"})
    with pytest.raises(SpecError, match="cannot take the variables"):
        read("std.extVar('x')", ext_vars={"x": "\ud800"})


def test_jsonnet_numbers_are_doubles() -> None:
    # jsonnet has one number type: integral values come back as int, big ones rounded
    assert read("{a: 2.0, b: 1 / 2}", ext_vars={"unused": "x"}).data == {"a": 2, "b": 0.5}
    assert isinstance(read("{a: 2.0}", tla={"unused": "x"}).data["a"], int)


# --- jsonnet errors


def test_syntax_error_has_line_and_column(specs: Path) -> None:
    file = write(specs / "model.jsonnet", "{\n  a: 1\n  b: 2,\n}\n")
    with pytest.raises(SpecError) as caught:
        read(file)
    error = caught.value
    assert (error.file, error.line, error.column) == (os.fspath(file), 3, 3)
    assert error.reason == "expected a comma before next field."
    assert str(error) == f"{file}:3:3: expected a comma before next field."


def test_runtime_error_has_line_and_column(specs: Path) -> None:
    file = write(specs / "model.jsonnet", 'local x = 1;\n{\n  a: x,\n  b: error "boom",\n}\n')
    with pytest.raises(SpecError) as caught:
        read(file)
    assert (caught.value.file, caught.value.line, caught.value.column) == (os.fspath(file), 4, 6)
    assert caught.value.reason == "boom"


def test_runtime_error_points_at_the_spec_not_the_std_library() -> None:
    with pytest.raises(SpecError) as caught:
        read('{\n  a: std.parseInt("x"),\n}')
    assert (caught.value.file, caught.value.line, caught.value.column) == (TEXT_NAME, 2, 6)
    assert caught.value.reason == "x is not a base 10 integer"


def test_runtime_error_names_its_callers() -> None:
    with pytest.raises(SpecError) as caught:
        read('local f(x) =\n  if x > 2 then error "too big"\n  else x;\n{a: [f(1), f(5)]}')
    assert (caught.value.line, caught.value.column) == (2, 17)
    assert caught.value.reason == "too big\n  called from <text>:4:12\n  called from <text>:4:5"


def test_multiline_location() -> None:
    with pytest.raises(SpecError) as caught:
        read('{\n  a: "x" +\n   {\n  b: 2}.c\n}\n')
    assert (caught.value.line, caught.value.column) == (3, 4)
    assert caught.value.reason == "field does not exist: c"


def test_error_in_an_ext_code_snippet() -> None:
    with pytest.raises(SpecError) as caught:
        read("std.extVar('n')", ext_code={"n": "1 +"})
    assert (caught.value.file, caught.value.line, caught.value.column) == ("<extvar:n>", 1, 4)


def test_error_in_an_imported_file_names_that_file(specs: Path) -> None:
    library = write(specs / "lib" / "bad.libsonnet", "{a: 1 +}")
    file = write(specs / "model.jsonnet", 'import "lib/bad.libsonnet"')
    with pytest.raises(SpecError) as caught:
        read(file)
    assert (caught.value.file, caught.value.line, caught.value.column) == (os.fspath(library.resolve()), 1, 8)


# --- imports and the sandbox


def test_import_and_importstr_from_subfolders(specs: Path) -> None:
    write(specs / "blocks" / "resnet.libsonnet", "{block(width):: {type: 'Conv2d', width: width}}")
    write(specs / "blocks" / "notes.txt", "hello")
    write(specs / "blocks" / "common.libsonnet", "{width: 8}")
    # a library importing its sibling, and ../ that stays inside the spec folder
    write(specs / "blocks" / "deep" / "more.libsonnet", "(import '../common.libsonnet') + {more: true}")
    file = write(
        specs / "model.jsonnet",
        "local resnet = import 'blocks/resnet.libsonnet';\n"
        "{a: resnet.block(4), note: importstr 'blocks/notes.txt', more: import 'blocks/deep/more.libsonnet'}",
    )
    assert read(file).data == {"a": {"type": "Conv2d", "width": 4}, "note": "hello", "more": {"width": 8, "more": True}}


def test_import_relative_to_the_working_folder(specs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(specs / "lib.libsonnet", "{v: 1}")
    write(specs / "model.jsonnet", "import 'lib.libsonnet'")
    monkeypatch.chdir(specs)
    assert read("model.jsonnet").data == {"v": 1}
    assert read(Path("model.jsonnet"), ext_code={"x": "import 'lib.libsonnet'"}).data == {"v": 1}


def test_import_from_search_paths(tmp_path: Path, specs: Path) -> None:
    write(tmp_path / "shared" / "layers.libsonnet", "{relu: {type: 'ReLU'}}")
    file = write(specs / "model.jsonnet", "(import 'layers.libsonnet').relu")
    assert read(file, search_paths=[tmp_path / "shared"]).data == {"type": "ReLU"}
    assert read("(import 'layers.libsonnet').relu", search_paths=[str(tmp_path / "shared")]).data == {"type": "ReLU"}
    with pytest.raises(SpecError, match=r"'layers\.libsonnet' not found"):
        read(file)


def test_own_folder_comes_before_search_paths(tmp_path: Path, specs: Path) -> None:
    write(tmp_path / "shared" / "lib.libsonnet", "'shared'")
    write(specs / "lib.libsonnet", "'own'")
    file = write(specs / "model.jsonnet", "import 'lib.libsonnet'")
    assert read(file, search_paths=[tmp_path / "shared"]).data == "own"


def test_text_imports_nothing_without_search_paths(outside: Path) -> None:
    with pytest.raises(SpecError, match="refused"):
        read(f"import '{outside.name}'")


def test_absolute_import_is_refused(specs: Path, outside: Path) -> None:
    file = write(specs / "model.jsonnet", f"{{\n  x: import '{outside}',\n}}")
    with pytest.raises(SpecError) as caught:
        read(file)
    assert "relative paths only" in caught.value.reason
    assert "leaked" not in str(caught.value)
    assert (caught.value.file, caught.value.line) == (os.fspath(file), 2)


def test_parent_escape_is_refused(specs: Path, outside: Path) -> None:
    file = write(specs / "model.jsonnet", "import '../secret.libsonnet'")
    with pytest.raises(SpecError, match="leads outside") as caught:
        read(file)
    assert "leaked" not in str(caught.value)
    with pytest.raises(SpecError, match="leads outside"):
        read(file, ext_code={"x": "importstr '../secret.libsonnet'"})


def test_escape_from_an_imported_library_is_refused(specs: Path, outside: Path) -> None:
    write(specs / "lib" / "sneaky.libsonnet", "import '../../secret.libsonnet'")
    file = write(specs / "model.jsonnet", "import 'lib/sneaky.libsonnet'")
    with pytest.raises(SpecError, match="leads outside") as caught:
        read(file)
    assert caught.value.file == os.fspath((specs / "lib" / "sneaky.libsonnet").resolve())


def test_symlink_out_is_refused(specs: Path, outside: Path) -> None:
    file = write(specs / "model.jsonnet", "importstr 'link.libsonnet'")
    os.symlink(outside, specs / "link.libsonnet")
    with pytest.raises(SpecError, match="leads outside") as caught:
        read(file)
    assert "leaked" not in str(caught.value)


def test_symlinked_folder_out_is_refused(specs: Path, outside: Path) -> None:
    file = write(specs / "model.jsonnet", "import 'elsewhere/secret.libsonnet'")
    os.symlink(outside.parent, specs / "elsewhere")
    with pytest.raises(SpecError, match="leads outside"):
        read(file)


def test_symlink_inside_is_allowed(specs: Path) -> None:
    write(specs / "real" / "lib.libsonnet", "{v: 2}")
    os.symlink(specs / "real", specs / "alias")
    assert read(write(specs / "model.jsonnet", "import 'alias/lib.libsonnet'")).data == {"v": 2}


# --- resolve


def test_resolve_relative_then_roots(tmp_path: Path, specs: Path) -> None:
    block = write(specs / "blocks" / "resnet.jsonnet", "{}")
    shared = write(tmp_path / "shared" / "mlp.jsonnet", "{}")
    roots = [specs, tmp_path / "shared"]
    assert resolve("resnet.jsonnet", relative_to=specs / "blocks", roots=roots) == block.resolve()
    assert resolve("blocks/resnet.jsonnet", relative_to=specs / "model.jsonnet", roots=roots) == block.resolve()
    assert resolve("mlp.jsonnet", relative_to=specs / "blocks", roots=roots) == shared.resolve()
    assert resolve("mlp.jsonnet", relative_to=None, roots=[tmp_path / "shared"]) == shared.resolve()


def test_resolve_refusals(specs: Path, outside: Path) -> None:
    specs.mkdir()
    os.symlink(outside, specs / "link.jsonnet")
    for reference in (os.fspath(outside), "../secret.libsonnet", "link.jsonnet"):
        with pytest.raises(SpecError, match="refused"):
            resolve(reference, relative_to=specs, roots=[specs])
    with pytest.raises(SpecError, match="refused"):
        resolve("secret.libsonnet", relative_to=None, roots=[])


def test_resolve_missing(specs: Path) -> None:
    specs.mkdir()
    with pytest.raises(SpecError, match=r"'nope\.jsonnet' not found"):
        resolve("nope.jsonnet", relative_to=specs, roots=[specs])
    with pytest.raises(SpecError, match="not found"):
        resolve("", relative_to=specs, roots=[specs])


# --- anything at all


@given(st.text(max_size=60))
def test_any_text_gives_data_or_a_spec_error(text: str) -> None:
    with contextlib.suppress(SpecError):
        read(text)


@given(st.binary(max_size=60))
def test_any_file_gives_data_or_a_spec_error(content: bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        for name in ("spec.json", "spec.jsonnet"):
            file = Path(folder) / name
            file.write_bytes(content)
            with contextlib.suppress(SpecError):
                read(file)


def test_a_spec_reached_through_a_link_reads_files_beside_its_target(tmp_path: Path) -> None:
    # narchi's test data links its examples: data/top.jsonnet -> examples/top.jsonnet, whose import
    # lies beside the target
    examples, data, elsewhere = tmp_path / "examples", tmp_path / "data", tmp_path / "elsewhere"
    for folder in (examples, data, elsewhere):
        folder.mkdir()
    (examples / "part.libsonnet").write_text('{"type": "ReLU"}')
    (examples / "top.jsonnet").write_text('local part = import "part.libsonnet"; part')
    (data / "top.jsonnet").symlink_to(examples / "top.jsonnet")
    document = read(data / "top.jsonnet")
    assert document.data == {"type": "ReLU"}
    assert examples in document.roots
    # the target's folder is readable, a third folder still is not
    (elsewhere / "secret.libsonnet").write_text("{}")
    (data / "secret.libsonnet").symlink_to(elsewhere / "secret.libsonnet")
    (examples / "leaky.jsonnet").write_text('import "secret.libsonnet"')
    (data / "leaky.jsonnet").symlink_to(examples / "leaky.jsonnet")
    with pytest.raises(SpecError, match="leads outside the folders a spec may read"):
        read(data / "leaky.jsonnet")
