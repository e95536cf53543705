"""The commands: their options, help, exit statuses and messages (the work is done by the other packages)."""
