"""Command line: parse, call the library, render. No migration logic lives here."""
