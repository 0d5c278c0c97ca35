"""ftplan runner: executes rendered run directories, watches them, diagnoses failures.
Heavy libraries (torch, transformers) are imported only by the functions that need them."""
