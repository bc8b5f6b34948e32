"""Errors zoo-bench raises on purpose: each names the thing at fault and what to do."""


class ZooBenchError(Exception):
    """Base of every error zoo-bench raises deliberately."""


class ZooFormatError(ZooBenchError):
    """A zoo folder (or its manifest, table or weights) is not valid canonical format."""


class ZooImportError(ZooBenchError):
    """Source files handed to an importer are missing or malformed."""


class DownloadError(ZooBenchError):
    """A download failed, was refused, or its content did not verify."""


class UnsafeArchiveError(ZooBenchError):
    """An archive member would escape the target folder or is not a plain file or folder."""


class EvaluationError(ZooBenchError):
    """Predictions or targets handed to the evaluator break its contract."""


class RegistryError(ZooBenchError):
    """Unknown, duplicate or malformed predictor or task registration."""
