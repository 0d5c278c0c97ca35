"""The wizard in a real terminal (tmux): it starts, moves to the next screen by keyboard, and
quits cleanly with exit code 0."""

import shutil
import subprocess
import sys
import time
import uuid

import pytest

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux not installed (.ci/run installs it)")


def _pane(session):
    return subprocess.run(["tmux", "capture-pane", "-p", "-t", session], capture_output=True, text=True).stdout


def _wait_for(session, text, timeout=30.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if text in _pane(session):
            return True
        time.sleep(0.1)
    return False


def test_wizard_starts_navigates_and_quits_in_tmux(tmp_path):
    session = f"ftplan-{uuid.uuid4().hex[:8]}"
    script = tmp_path / "wizard.sh"
    script.write_text(f'#!/usr/bin/env bash\n"{sys.executable}" -m planner\necho "EXITED $?"\nsleep 30\n')
    script.chmod(0o755)
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "100", "-y", "30", str(script)], check=True)
    try:
        assert _wait_for(session, "Should you fine-tune"), _pane(session)
        subprocess.run(["tmux", "send-keys", "-t", session, "Tab", "Space", "C-n"])
        assert _wait_for(session, "2 · Hardware"), _pane(session)
        subprocess.run(["tmux", "send-keys", "-t", session, "Escape"])
        assert _wait_for(session, "Should you fine-tune"), _pane(session)
        subprocess.run(["tmux", "send-keys", "-t", session, "q"])
        assert _wait_for(session, "EXITED 0"), _pane(session)
        assert "Traceback" not in _pane(session)
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)
