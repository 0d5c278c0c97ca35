"""The Textual wizard. Imported only when `ftplan` runs with no arguments."""
