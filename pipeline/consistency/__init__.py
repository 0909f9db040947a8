"""What each class of corridor's data guarantees, and how stale it is: measured, not claimed."""
