"""ftplan's command line: one module per subcommand; commands return data, output.py prints it."""
