"""Everything is in pyproject.toml but one step: the shipped scenarios and the schema
live at the top of the checkout (scenarios/, schema/: `./lab run scenarios/...`, the
tests and the editors' `$schema` lines name those paths), and a wheel carries them as
package data, tcplab/data/scenarios and tcplab/data/schema. build_py copies them there
in the build directory only, so the checkout has one copy and no symlink; an editable
install uses the checkout's (tcplab/catalogue.py looks in both places)."""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

SHIPPED = ("scenarios", "schema")


class BuildPyWithCatalogue(build_py):
    def run(self) -> None:
        super().run()
        if not self.editable_mode:
            for src in self._catalogue():
                self.mkpath(str(self._target(src).parent))
                self.copy_file(str(src), str(self._target(src)), preserve_mode=False)

    def get_outputs(self, include_bytecode: bool = True) -> list[str]:
        extra = [] if self.editable_mode else [str(self._target(s)) for s in self._catalogue()]
        return super().get_outputs(include_bytecode) + extra

    def _catalogue(self) -> list[Path]:
        return sorted(
            p
            for d in SHIPPED
            for p in Path(d).rglob("*")
            if p.is_file() and p.suffix in (".yaml", ".yml", ".json")
        )

    def _target(self, src: Path) -> Path:
        return Path(self.build_lib) / "tcplab" / "data" / src


setup(cmdclass={"build_py": BuildPyWithCatalogue})
