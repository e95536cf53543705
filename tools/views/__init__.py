"""What people see of a log: tables, stacks, JSON lines, listings, and the pipeline that feeds them."""
