"""The Emmett compiler (Emmett source to VP text). Not written yet: see emmett/cli.py."""
