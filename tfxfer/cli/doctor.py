"""``tfxfer doctor``: check that TensorFlow, Keras, tf_keras, TFMOT, LiteRT and keras-hub fit together.

Example:
    >>> from tfxfer.cli import main
    >>> main(["doctor"])  # doctest: +SKIP
    0
"""

from __future__ import annotations

from tfxfer.cli.common import EXIT_FAILURE, EXIT_OK, quiet_native_logs


def add_parser(sub) -> None:
    sub.add_parser("doctor", help="check that TensorFlow, Keras, tf_keras, TFMOT, LiteRT and keras-hub fit together")


def cmd_doctor(args) -> int:
    from tfxfer.recipes import doctor  # tfxfer.recipes imports numpy: loaded here, not at `tfxfer --help`

    with quiet_native_logs(True):
        checks = doctor.check_environment()
    print(doctor.format_checks(checks))
    return EXIT_OK if doctor.all_pass(checks) else EXIT_FAILURE
