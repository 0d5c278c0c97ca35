"""`ftplan` with no arguments: the Textual wizard, imported only on that path."""


def launch() -> int:
    from planner.errors import FtplanError

    try:
        from planner.tui.app import run_app
    except ImportError as e:
        if (e.name or "").startswith("textual"):
            raise FtplanError("the wizard needs textual: pip install textual, or use the subcommands (ftplan --help)") from None
        raise FtplanError(f"ftplan's wizard is incomplete ({e.name} missing); reinstall ftplan") from None
    return run_app()
