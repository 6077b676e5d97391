"""Errors a user can cause. The CLI prints their message (and hint) and exits non-zero."""


class ZooError(Exception):
    """A mistake or missing resource the user can fix; `hint` says how."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n{self.hint}"


class UnknownModelError(ZooError):
    """No installed plugin has that name."""


class ConfigError(ZooError):
    """A configuration key is unknown, ill-typed, out of range, or the model cannot be built."""

    exit_code = 2


class DataNotFoundError(ZooError):
    """A data set could not be found locally and could not be downloaded."""


class RunError(ZooError):
    """A folder is not a zoo run, or its files are missing, corrupt or foreign."""


class TrainingDiverged(ZooError):
    """The loss became NaN or infinite; the best checkpoint was kept."""


class CapabilityError(ZooError):
    """The model cannot do what was asked (e.g. sample from a plain autoencoder)."""
