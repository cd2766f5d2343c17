"""asv benchmarks for the time to import cryocore in a fresh interpreter.

``timeraw_*`` benchmarks return source code that asv runs in a new Python
process each sample, so nothing is cached from a previous import.
"""


class ImportSuite:
    """Cold import of the package (which loads the compiled core and FFTW)."""

    def timeraw_import(self):
        return "import cryocore"

    def timeraw_import_numpy(self):
        """Baseline: cryocore imports numpy, so this is the floor for the above."""
        return "import numpy"
