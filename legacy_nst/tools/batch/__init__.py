"""Many runs: `run_jobs(jobs, out_dir)` runs Jobs on this machine (one by one in this process, or N worker
processes) or as tasks on a Ray cluster, and keeps a summary of every job.

- Outputs: a job without an output path writes `OUT/<name>/<name>.png` (+ its losses CSV, settings JSON,
  snapshots and checkpoint); a job with one keeps it. Every job saves checkpoints (`save_every` defaults to
  a quarter of its budget; L-BFGS checkpoints at each restart), so a cut job continues where it was.
- Faults: a job that fails (bad input, a non-finite loss) is recorded with its reason and the batch goes
  on. A worker that dies (killed, out of memory) has its job retried, at most `retries` times, from the
  job's last checkpoint. Ctrl-C (or SIGTERM) stops the batch: running jobs keep their checkpoint and
  partial image, finished ones are kept; the same call again skips the jobs done (same settings, result
  still there) and resumes the others.
- OUT/summary.csv and OUT/summary.json list every job (status, reason, final losses, evaluations, seconds,
  where it ran, attempts) and are rewritten, atomically, after every job.
- Local workers are processes (TensorFlow sessions in threads would share one thread pool), started once:
  each imports TensorFlow once and keeps the weights it read (weights.load_weights_cached).
- Threads: every job runs with `cpus_per_job` threads (Job.threads; default 1) in every mode, inline, in a
  worker process or as a Ray task, because oneDNN's float32 sums depend on the thread count (on an AVX2
  EPYC 2 threads and 1 gave final losses 3.793e6 and 3.776e6). So a job gives the same bytes in any mode on
  the same kind of machine (tests/tools/test_batch.py compares them); on another CPU kind, the same image to
  float32 tolerance.
- Ray: each job is one task asking for `cpus_per_job` CPUs (or one GPU, for device "gpu", or "auto" on a
  cluster with GPUs; a worker that ran a GPU task is not reused). Nothing travels as a path: the driver
  reads and checks every input once and puts it in the object store (decoded images, mask files, the
  weight file's bytes, which each node caches once on its local disk under its content's digest); a task
  runs its job in a scratch folder on its node and returns every file it wrote as bytes, and streams its
  checkpoints and snapshots to a small actor on the driver's node as it saves them. Only the driver writes
  under `out_dir` (a relative one is the driver's). A task whose worker or node died is retried by Ray
  (`retries` times) from the last checkpoint it streamed, on any node. Tasks in flight follow the live
  cluster's resources, re-read as nodes join and leave.
- Locks: OUT/.batch.lock holds the driver's host, boot id and pid and its workers' pids: a second batch on
  the same --out is refused while the first lives, and takes over once it and its workers are gone.
  Worker processes die with their driver (PR_SET_PDEATHSIG).

Modules: driver (run_jobs), jobs (outputs, keys and names made ready), attempts (one attempt at one job, in
whichever process), pools (what the pools share), inline, processes and ray_pool (the three pools; ray_tasks:
what a Ray task runs on its node), lock (OUT/.batch.lock), summary (OUT/summary.*), outcomes (JobOutcome,
Progress).
"""
from .driver import run_jobs, sigterm_as_interrupt
from .jobs import job_key
from .outcomes import STATUSES, JobOutcome, Progress
from .summary import write_summary

__all__ = ["STATUSES", "JobOutcome", "Progress", "job_key", "run_jobs", "sigterm_as_interrupt", "write_summary"]
