"""What a run prints when its output is a log file (plain lines, no carriage returns or colour codes)
and when it is a terminal (progress bars); numbers and durations as a person reads them."""

import io
import re
import sys

import pytest

from tfxfer.recipes.console import Console
from tfxfer.utils.humanize import format_bytes, format_count, format_duration, format_number


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_plain_lines_when_not_a_terminal(monkeypatch):
    monkeypatch.setattr(sys, "stdout", io.StringIO())
    console = Console(1, stream=io.StringIO())
    assert not console.interactive and console.keras_verbose == 2  # Keras: one line per epoch, no bar
    assert list(console.progress(range(5), desc="calibration", unit="images")) == [0, 1, 2, 3, 4]
    bar = console.counter(desc="benchmark (LiteRT)", unit="block")
    bar.update(3, 30)
    bar.update(30, 30)
    bar.close()
    lines = console.stream.getvalue().splitlines()
    assert re.fullmatch(r"  calibration: 5 images in [0-9.]+ (us|ms|s)", lines[0]), lines
    assert lines[1].startswith("  benchmark (LiteRT): 30/30 block in ")
    assert "\r" not in console.stream.getvalue() and "\x1b" not in console.stream.getvalue()


def test_progress_bars_on_a_terminal(monkeypatch):
    monkeypatch.setattr(sys, "stdout", _Terminal())
    console = Console(1, stream=_Terminal())
    assert console.interactive and console.keras_verbose == 1
    bar = console.counter(desc="benchmark", unit="block")
    bar.update(4, 4)
    bar.close()
    assert "benchmark: 100%" in console.stream.getvalue() and "\r" in console.stream.getvalue()
    monkeypatch.setattr(sys, "stdout", io.StringIO())  # Keras writes its bars to stdout: a log there means lines
    assert Console(1, stream=_Terminal()).keras_verbose == 2
    assert Console(0, stream=_Terminal()).keras_verbose == 0


@pytest.mark.parametrize("size, text", [(0, "0 B"), (1023, "1023 B"), (1536, "1.5 KiB"), (13_465_600, "12.8 MiB"),
                                        (138_412_032, "132 MiB"), (3 * 2**30, "3.0 GiB")])
def test_format_bytes(size, text):
    assert format_bytes(size) == text


@pytest.mark.parametrize("seconds, text", [(0.0004, "400 us"), (0.0421, "42.1 ms"), (0.35, "350 ms"), (3.21, "3.2 s"),
                                           (42.4, "42 s"), (120, "2 min"), (135, "2 min 15 s"), (7500, "2 h 05 min")])
def test_format_duration(seconds, text):
    assert format_duration(seconds) == text


def test_format_count_and_number():
    assert [format_count(n) for n in (950, 12_300, 3_371_440, 1.2e9)] == ["950", "12.3k", "3.4M", "1.2B"]
    assert [format_number(v) for v in (13150.0, 13151.7, 0.000123, 0.91234, 7, float("nan"), True)] == [
        "13150", "13152", "0.000123", "0.9123", "7", "nan", "True"]
    assert "e+" not in format_number(123456789.123) and "e-" not in format_number(1.5e-7)
