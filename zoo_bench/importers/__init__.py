"""Importers: turn published model zoos (Small CNN Zoo, Schürholt et al.) into canonical zoos."""

from zoo_bench.importers.ctc import import_ctc
from zoo_bench.importers.schurholt import import_schurholt

IMPORTERS = {"ctc": import_ctc, "schurholt": import_schurholt}

__all__ = ["IMPORTERS", "import_ctc", "import_schurholt"]
