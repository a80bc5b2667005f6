"""Background jobs for the app (and scripts): erasures and spectra run in a worker thread, each job
a folder on disk that survives restarts. No UI code here; the app only wires these calls.

    from jobs import JobManager
    manager = JobManager("runs/jobs")
"""

from .limits import Limits
from .manager import JobManager, QuotaError
from .store import FINAL, JobFolder, JobInfo

__all__ = ["FINAL", "JobFolder", "JobInfo", "JobManager", "Limits", "QuotaError"]
