"""Package code is imported from bytes, privately: no sys.path entry, only private names in
sys.modules (and one finder for them) while it is open, nothing once it is closed."""

from __future__ import annotations

import sys
import traceback

import pytest
from mpkg._internal.load.codeimport import PackageCode, private_prefix
from mpkg.errors import FormatError, MpkgError

FILES_A = {
    "pipeline.py": b"from . import helpers\nimport helpers.util as hu\n"
    b"from helpers.util import twice\n"
    b"from .helpers import util\nNAME = 'A'\n"
    b"def run(x):\n    return hu.twice(x) + util.twice(x) + twice(x)\n",
    "helpers/__init__.py": b"from .util import twice as _t\n",
    "helpers/util.py": b"def twice(x):\n    return 2 * x\n",
}
FILES_B = {
    "pipeline.py": b"import helpers\nNAME = 'B'\ndef run(x):\n    return helpers.VALUE + x\n",
    "helpers.py": b"VALUE = 100\n",
}


def snapshot() -> tuple[list[str], set[str], list[object], list[object]]:
    return list(sys.path), set(sys.modules), list(sys.meta_path), list(sys.path_hooks)


def test_two_packages_with_the_same_module_names_side_by_side() -> None:
    before = snapshot()
    code_a = PackageCode(FILES_A, private_prefix("sha256:" + "a" * 64), "a@1.0.0")
    code_b = PackageCode(FILES_B, private_prefix("sha256:" + "b" * 64), "b@1.0.0")
    a, b = code_a.import_module("pipeline"), code_b.import_module("pipeline")
    assert (a.NAME, b.NAME) == ("A", "B")
    assert a.run(1) == 6 and b.run(1) == 101
    assert a.__name__ == "_mpkg_code_aaaaaaaaaaaa.pipeline"
    path, modules, _, hooks = snapshot()
    assert (path, hooks) == (before[0], before[3])
    assert {m for m in modules - before[1] if not m.startswith("_mpkg_code_")} == set()
    assert "helpers" not in sys.modules and "pipeline" not in sys.modules
    code_a.close()
    code_b.close()
    assert snapshot() == before


def test_lazy_imports_inside_functions_resolve_later() -> None:
    files = {
        "m.py": b"def f():\n    from . import late\n    import late as again\n    return late.V + again.V\n",
        "late.py": b"V = 21\n",
    }
    code = PackageCode(files, "_mpkg_code_test_lazy", "lazy@1.0.0")
    assert code.import_module("m").f() == 42
    assert "_mpkg_code_test_lazy.late" in sys.modules and "late" not in sys.modules
    code.close()
    assert "_mpkg_code_test_lazy.late" not in sys.modules


def test_third_party_imports_use_the_normal_system() -> None:
    files = {"m.py": b"import json\nimport numpy as np\nX = np.arange(3).tolist()\nJ = json.dumps(X)\n"}
    mod = PackageCode(files, "_mpkg_code_test_tp", "tp@1.0.0").import_module("m")
    assert mod.J == "[0, 1, 2]"


def test_relative_import_beyond_root_is_refused() -> None:
    files = {"m.py": b"from .. import x\n"}
    with pytest.raises(MpkgError, match=r"importing 'm' from the package code failed: ImportError"):
        PackageCode(files, "_mpkg_code_test_rel", "rel@1.0.0").import_module("m")


def test_import_errors_name_the_package_and_leave_nothing_behind() -> None:
    files = {"m.py": b"import helper_missing_from_everywhere_xyz\n"}
    code = PackageCode(files, "_mpkg_code_test_err", "err@1.0.0")
    with pytest.raises(MpkgError) as exc:
        code.import_module("m")
    assert "err@1.0.0: code" in str(exc.value) and "ModuleNotFoundError" in str(exc.value)
    assert code.modules == {}
    with pytest.raises(FormatError, match=r"code module 'nope' is not among"):
        code.import_module("nope")


def test_tracebacks_show_package_source_lines() -> None:
    files = {"m.py": b"def boom():\n    raise ValueError('from package code')\n"}
    mod = PackageCode(files, "_mpkg_code_test_tb", "tb@1.0.0").import_module("m")
    try:
        mod.boom()
    except ValueError:
        text = traceback.format_exc()
    assert 'File "tb@1.0.0/code/m.py", line 2, in boom' in text
    assert "raise ValueError('from package code')" in text


def test_dataclasses_and_star_imports_work() -> None:
    files = {
        "m.py": b"from dataclasses import dataclass\nfrom .k import *\n"
        b"@dataclass(frozen=True)\nclass P:\n    a: int\nV = P(K).a\n",
        "k.py": b"__all__ = ['K']\nK = 5\n",
    }
    assert PackageCode(files, "_mpkg_code_test_dc", "dc@1.0.0").import_module("m").V == 5


def test_private_prefix() -> None:
    assert private_prefix("sha256:0123456789abcdef" + "0" * 48) == "_mpkg_code_0123456789ab"
    assert private_prefix("").startswith("_mpkg_code_src")
