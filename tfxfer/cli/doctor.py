"""``tfxfer doctor``: check that TensorFlow, Keras, tf_keras, TFMOT, LiteRT and keras-hub fit together.

The version table (package metadata only) prints at once; the import checks that follow take
seconds (they import TensorFlow). ``--versions-only`` stops after the table.

Example:
    >>> from tfxfer.cli import main
    >>> main(["doctor", "--versions-only"])  # doctest: +SKIP
    0
"""

from __future__ import annotations

import dataclasses

from tfxfer.cli.common import EXIT_FAILURE, EXIT_OK, add_json, emit_json
from tfxfer.utils.native_logs import quiet_native_logs


def add_parser(sub) -> None:
    p = sub.add_parser("doctor", help="check that TensorFlow, Keras, tf_keras, TFMOT, LiteRT and keras-hub fit "
                       "together")
    p.add_argument("--versions-only", action="store_true", help="only the installed versions and environment "
                   "variables (instant; skips the import checks)")
    add_json(p)


def cmd_doctor(args) -> int:
    from tfxfer.recipes import doctor  # numpy and yaml, no TensorFlow

    checks = doctor.version_checks()
    if not args.json:
        print(doctor.format_rows(checks), flush=True)
    if not args.versions_only:
        with quiet_native_logs(True):
            more = doctor.import_checks()
        if not args.json:
            print(doctor.format_rows(more, header=False))
        checks += more
    code = EXIT_OK if doctor.all_pass(checks) else EXIT_FAILURE
    if args.json:
        failed = [c.name for c in checks if not (c.ok or c.level == "warning")]
        error = {"type": "EnvironmentError", "message": f"fix: {', '.join(failed)}"} if failed else None
        emit_json(args, exit_code=code, error=error, checks=[dataclasses.asdict(c) for c in checks])
    else:
        print("\n" + doctor.format_fixes(checks))
    return code
