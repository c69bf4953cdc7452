"""`BackgroundTask`: one action on a second thread, joined with its error, or run here if never started."""

import threading

import pytest

from rnn_monitor.background import BackgroundTask


def test_runs_on_its_own_thread_once_and_join_waits_for_it():
    seen = []
    release = threading.Event()

    def action():
        release.wait(5)
        seen.append(threading.current_thread().name)

    beside = BackgroundTask(action)
    beside.start()
    beside.start()  # a second start does not run it again
    assert seen == []  # still waiting: it runs beside this thread
    release.set()
    beside.join()
    assert seen == ["rnn_monitor-beside"]
    beside.finish()
    assert len(seen) == 1


def test_join_raises_what_the_action_raised():
    beside = BackgroundTask(lambda: 1 / 0)
    beside.start()
    with pytest.raises(ZeroDivisionError):
        beside.join()


def test_finish_runs_it_here_when_it_was_never_started():
    seen = []
    beside = BackgroundTask(lambda: seen.append(threading.current_thread().name))
    beside.finish()
    beside.finish()
    assert seen == [threading.current_thread().name]
