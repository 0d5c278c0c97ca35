"""`ftplan` with no arguments: the Textual wizard, imported only on that path."""


def launch() -> int:
    from planner.errors import FtplanError

    try:
        from planner.tui.app import run_app
    except ImportError as e:
        raise FtplanError(f"the wizard needs textual ({e.name}); pip install textual, or use the subcommands (ftplan --help)") from None
    return run_app()
