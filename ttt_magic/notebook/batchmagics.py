"""``%ttt_batch``: the batch jobs of this folder, waiting for one, and its results.

Registered beside the ``%%ask`` magics (``register(ipython)``); ``?`` help
comes from the arguments (IPython's ``magic_arguments``). Like the other
magics, this module imports only IPython until the magic runs.

::

    %ttt_batch                          # the jobs of this folder, as last saved
    %ttt_batch --refresh                # ... after asking the providers
    %ttt_batch --wait batch-3f2a9c1e0b  # wait (Ctrl-C stops waiting, not the job)
    %ttt_batch --results batch-3f2a9c1e0b -o answers
"""

from __future__ import annotations

from typing import Any

from IPython.core.error import UsageError as IPythonUsageError
from IPython.core.magic import Magics, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring

__all__ = ["BatchMagics", "register", "table", "unregister"]


def table(jobs: list[tuple[Any, Any]]) -> str:
    """The jobs as a text table: file, engine, model, rows and progress, state, created."""
    if not jobs:
        return "No batch jobs in this folder (submit_batch(...) writes a batch-*.json state file here)."
    rows = [("job", "engine", "model", "rows", "done", "failed", "pending", "state", "created")]
    for path, job in jobs:
        status = job.saved_status()
        states = ", ".join(dict.fromkeys(status.provider_states)) or "-"
        rows.append(
            (
                path.name,
                job.engine,
                str(job.state.get("model") or "-"),
                f"{status.total:,}",
                f"{status.done:,}",
                f"{status.failed:,}",
                f"{status.pending:,}",
                f"{status.state} ({states})",
                str(job.state.get("created") or "-")[:19].replace("T", " "),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


@magics_class
class BatchMagics(Magics):
    """The magic of jobs on the providers' batch engines."""

    @magic_arguments()
    @argument("--refresh", action="store_true", help="Ask the providers how far the unfinished jobs are.")
    @argument(
        "--wait", metavar="NAME", help="Wait for job NAME (polling with back-off) and show its progress."
    )
    @argument("--results", metavar="NAME", help="The answers of job NAME (an Answers, in input order).")
    @argument(
        "-o", "--out", metavar="VAR", help="With --results: store the answers in VAR instead of showing them."
    )
    @argument("--status", metavar="NAME", help="Ask the provider how far job NAME is.")
    @argument("--cancel", metavar="NAME", help="Cancel job NAME at the provider (answered rows are kept).")
    @argument("--retry", metavar="NAME", help="Send the failed rows of job NAME again, as a new batch.")
    @argument(
        "--dir", metavar="FOLDER", default=".", help="The folder of the state files (default: this one)."
    )
    @line_magic
    def ttt_batch(self, line: str) -> Any:
        """The batch jobs of this folder and their progress; --wait, --results NAME -o VAR, --cancel.

        A job is the state file submit_batch(...) wrote (batch-NAME.json): NAME
        is that file, its name without .json, or what follows "batch-". The
        list shows the progress as last saved; --refresh asks the providers.
        """
        from ..batchjobs import find, list_jobs
        from ..errors import TTTError

        args = parse_argstring(self.ttt_batch, line)
        actions = [a for a in ("wait", "results", "status", "cancel", "retry") if getattr(args, a)]
        if len(actions) > 1:
            raise IPythonUsageError(f"Give one of --{', --'.join(actions)} at a time.")
        if args.out and not args.results:
            raise IPythonUsageError("-o goes with --results (e.g. %ttt_batch --results NAME -o answers).")
        try:
            if not actions:
                jobs = list_jobs(args.dir)
                if args.refresh:
                    for _, job in jobs:
                        if job.saved_status().state != "ended":
                            job.status()
                print(table(jobs))
                return None
            action = actions[0]
            from ..batchjobs import BatchJob

            job = BatchJob.load(find(getattr(args, action), args.dir))
            if action == "wait":
                print(job.wait(progress=True).line())
            elif action == "status":
                print(job.status().line())
            elif action == "cancel":
                print(job.cancel().line())
            elif action == "retry":
                job.retry_failed()
                print(job.saved_status().line())
            else:
                answers = job.results()
                if args.out:
                    self.shell.user_ns[args.out] = answers
                    print(f"{args.out} = {answers.summary()}")
                    return None
                return answers
        except TTTError as exc:
            raise IPythonUsageError(str(exc)) from None
        return None


def register(ipython: Any) -> None:
    """Add ``%ttt_batch`` to ``ipython`` (once)."""
    if "BatchMagics" in ipython.magics_manager.registry:
        return
    ipython.register_magics(BatchMagics(shell=ipython))


def unregister(ipython: Any) -> None:
    """Remove the magic ``register`` added."""
    manager = ipython.magics_manager
    magics = manager.registry.pop("BatchMagics", None)
    if magics is None:
        return
    for kind, table_ in magics.magics.items():
        for name in table_:
            bound = manager.magics.get(kind, {}).get(name)
            if bound is not None and getattr(bound, "__self__", None) is magics:
                del manager.magics[kind][name]
