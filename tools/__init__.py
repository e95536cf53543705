"""User commands (installed as the `vprobe_tools` package): vprobe and its helpers."""
