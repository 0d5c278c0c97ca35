"""One error family, caught once in the CLI's main(): a one-line message, exit code 2."""


class FtplanError(Exception):
    """Base of every error ftplan reports to a user. The message is one line that says
    what is wrong and what to do."""

    exit_code = 2


class ModelError(FtplanError):
    """A model could not be resolved (unknown name, bad config.json, offline Hub id)."""


class HardwareError(FtplanError):
    """An unknown GPU, a bad GPU count, or NVML trouble where it was required."""


class PlanError(FtplanError):
    """A plan's settings cannot run together (batch 0, rank too large, method/task pair)."""


class DataError(FtplanError):
    """A dataset file is missing, of unknown format, or has a bad row."""


class RenderError(FtplanError):
    """A run directory cannot be written or rendered."""


class RunError(FtplanError):
    """A run cannot be started, resumed or watched."""
