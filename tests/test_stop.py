"""The one stop policy: every reason a run ends has one line and one exit code (dreamstyle.stop)."""

from __future__ import annotations

import pytest

from dreamstyle.stop import Catch, Reason, Stop, describe, kept_as


@pytest.mark.parametrize(
    "stop, line, code",
    [
        (Stop(Reason.DONE, "wrote out.png"), "wrote out.png", 0),
        (
            Stop(Reason.INTERRUPTED, "the best image so far is in out.png"),
            "interrupted; the best image so far is in out.png",
            130,
        ),
        (
            Stop(Reason.INTERRUPTED, "the best picture so far is kept: a.png", interrupted_as="stopped"),
            "stopped; the best picture so far is kept: a.png",
            130,
        ),
        (
            Stop(Reason.DIVERGED, "the last good image is in out.png", "in style", "by iteration 3", ". Lower --lr"),
            "the loss became NaN or infinite (by iteration 3, in style); the last good image is in out.png. Lower --lr",
            1,
        ),
        (
            Stop(Reason.DIVERGED, "the last good picture is kept: a.png", advice=" (lower the weights)"),
            "the loss became NaN or infinite; the last good picture is kept: a.png (lower the weights)",
            1,
        ),
        (
            Stop(Reason.OUT_OF_MEMORY, "the best image so far is in out.png", "out of memory at 2048x2048"),
            "out of memory at 2048x2048; the best image so far is in out.png",
            1,
        ),
        (Stop(Reason.OUT_OF_MEMORY, "nothing was written"), "out of memory; nothing was written", 1),
        (
            Stop(Reason.FAILED, "the best image so far is in out.png", "loss term 'x' raised"),
            "loss term 'x' raised; the best image so far is in out.png",
            1,
        ),
        (
            Stop(Reason.DONE, "wrote out.png", rescue="out.png could not be written; it was saved in /tmp/r instead"),
            "out.png could not be written; it was saved in /tmp/r instead",
            1,
        ),
        (
            Stop(Reason.INTERRUPTED, "x", rescue="out.png could not be written; it was saved in /tmp/r instead"),
            "interrupted; out.png could not be written; it was saved in /tmp/r instead",
            130,
        ),
    ],
)
def test_describe_gives_each_reason_one_line_and_exit_code(stop, line, code):
    said = describe(stop)
    assert (said.line, said.code) == (line, code)
    assert said.failed == (code == 1)


def test_every_reason_is_described():
    for reason in Reason:
        said = describe(Stop(reason, "here"))
        assert said.line.endswith("here") and said.code == reason.code


def test_a_reason_reads_as_its_value_and_from_a_recipe():
    assert Reason.of(None) is Reason.DONE and Reason.of("out of memory") is Reason.OUT_OF_MEMORY
    assert f"{Reason.DIVERGED}" == str(Reason.DIVERGED) == "diverged" == Reason.DIVERGED
    assert kept_as(Reason.DIVERGED, "dream") == "the last good dream"
    assert kept_as(Reason.INTERRUPTED) == "the best picture so far"


def test_kept_says_whether_an_output_was_written():
    assert not Stop(Reason.INTERRUPTED, "nothing was written").kept
    assert Stop(Reason.INTERRUPTED, "x", path="out.png").kept and Stop(Reason.FAILED, "x", rescue="r").kept


def test_catch_turns_ctrl_c_into_a_reason_and_lets_the_rest_through():
    with Catch() as caught:
        raise KeyboardInterrupt
    assert caught.reason is Reason.INTERRUPTED
    with Catch() as caught:
        pass
    assert caught.reason is None
    with pytest.raises(ValueError), Catch():
        raise ValueError("not a stop")
