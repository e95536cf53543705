"""The log a script writes, read back: its text and JSON forms, from files and pipes."""
