"""The VMs the commands work on: one in this process, or one running in the background and its daemon."""
