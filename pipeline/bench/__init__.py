"""`corridor bench`: speed and memory measured on this machine, in one run, written as JSON."""
